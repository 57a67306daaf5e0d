"""kvlab's Python side: plotting of results folders (plot_run)."""
