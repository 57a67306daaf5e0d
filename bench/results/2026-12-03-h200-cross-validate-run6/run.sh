# The lead's last call of 2026-12-03 (evening): the whole cross-validation with every helper's
# work merged, the dense step breakdown (step_bench), then the peers (FlashInfer's tensor-core
# decode never ran) with what time is left. Everything under /tmp/res, tarred into $OUT.
S=$SECONDS; sha=$1
res=/tmp/res; mkdir -p $res
cmake --preset gpu -DKVLAB_PTXAS_VERBOSE=ON -DCMAKE_POSITION_INDEPENDENT_CODE=ON "-DCMAKE_CUDA_FLAGS=--split-compile=4" > $res/configure.log 2>&1
cmake --build build/gpu --target kvlab engine_test step_bench kvlab_decode_capi -- -j16 > $res/prebuild.log 2>&1 || { grep -E "error" -A3 $res/prebuild.log | head -40; }
echo "prebuilt at $((SECONDS-S)) s"
KVLAB_COMMIT=$sha OUT=$res/cv timeout 430 bash bench/gpu/cross_validate.sh > $res/cv_stdout.txt 2>&1
echo "cross_validate rc $? at $((SECONDS-S)) s"; tail -60 $res/cv/summary.txt 2>/dev/null | tail -40
cp $res/cv/h200.yaml $OUT/h200.yaml 2>/dev/null
left=$((500 - (SECONDS-S))); [ $left -gt 60 ] && left=60
[ $left -gt 10 ] && timeout $left build/gpu/bench/gpu/step_bench > $res/step_bench.csv 2> $res/step_bench.err
echo "step_bench rc $? at $((SECONDS-S)) s"; grep -E 'sum of|measured|decode_attention|kv_append' $res/step_bench.csv | head -40
left=$((545 - (SECONDS-S)))
if [ $left -gt 40 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl > $res/pip.log 2>&1
  PYTHONPATH=/tmp/site MAX_JOBS=16 FLASHINFER_CUDA_ARCH_LIST=9.0a timeout $left python3 bench/gpu/peers.py --lib build/gpu/bench/gpu/libkvlab_decode_capi.so --quick > $res/bench_peers.csv 2> $res/bench_peers.err
  echo "peers rc $? at $((SECONDS-S)) s"; cat $res/bench_peers.csv | head -20
fi
tar -C $res -czf $OUT/results.tgz . ; ls -la $OUT
