# Second call: the calibration again (the first call's calibrate aborted on the fp8 GEMMs), then
# the Llama points, the Tangram and RedKnot plans and the MoE point simulated with it and replayed.
S=$SECONDS; sha=$1; res=/tmp/res; mkdir -p $res/runs
cmake --preset gpu -DKVLAB_PTXAS_VERBOSE=ON -DCMAKE_POSITION_INDEPENDENT_CODE=ON "-DCMAKE_CUDA_FLAGS=--split-compile=4" > $res/configure.log 2>&1
cmake --build build/gpu --target kvlab -- -j16 > $res/build.log 2>&1 || { grep -E "error" -A3 $res/build.log | head -40; exit 1; }
echo "built at $((SECONDS-S)) s"
k=build/gpu/experiments/kvlab
timeout 120 $k calibrate --gpu h200 --commit $sha --raw $res/calibration_raw.csv > $res/calibration.txt 2> $res/calibrate.err; echo "calibrate rc $? at $((SECONDS-S)) s"
cat $res/calibration.txt; tail -5 $res/calibrate.err; cp configs/calibration/h200.yaml $OUT/h200.yaml
for p in llama8b:calibrated llama8b_tangram:tangram llama8b_redknot:redknot qwen3_30b_a3b:moe; do
  f=${p%%:*}; d=${p##*:}
  left=$((330 - (SECONDS-S))); [ $left -lt 15 ] && { echo "skipped $d"; continue; }
  timeout 30 $k run bench/gpu/cross_validate/$f.yaml --iteration-log --no-plots --out $res/runs/$d > $res/sim_$d.txt 2>&1
  timeout $left $k replay $res/runs/$d --warmup 1 --repeats 3 2>> $res/replay.err | tee -a $res/replay.txt
  echo "$d replayed at $((SECONDS-S)) s"
done
python3 python/kvlab/accuracy_table.py $res/runs/* > $OUT/accuracy_table.md 2>> $res/replay.err; cat $OUT/accuracy_table.md
tar -C $res -czf $OUT/results2.tgz . ; ls -la $OUT
