#!/usr/bin/env bash
# The checks a lent GPU machine runs, in one call of the device tool: the carried wheels installed, the tests that
# need CUDA, then the GPU benchmarks of issues 13-15, most wanted first. Each step is bounded by `timeout`, and one
# that cannot finish before the deadline (argv[1] seconds from the start, default 480; the steps together may take
# 1,300 s; those before two_speeds took about 420 s on an H200) is not started, so the call ends inside its limit and
# says what it left out.
# Everything goes to $OUT/log.txt as it is written (it comes back even if the call is cut short), each benchmark's
# JSON line to $OUT/results.jsonl, the default runs' folders to $OUT/runs.tar.gz.
#
# Run from the repository root, with the wheels of packages the machine lacks in .whl/ (carried; made here by
# benchmarks/gpu_wheels.sh):
#   bash benchmarks/gpu_session.sh 600
set -u
deadline_s=${1:-480}
out=${OUT:-$(mktemp -d)}
start=$(date +%s)
log=$out/log.txt
exec > >(tee -a "$log") 2>&1

if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "wheels did not install"; exit 3; }
    export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import sys, torch, transformers, profiler.cli.main, profiler.costmodel.fit_file, jsonschema
print(sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__,
      'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" \
    || { echo "the profiler does not import here"; exit 3; }

# step NAME LIMIT_S COMMAND...: run COMMAND under `timeout LIMIT_S` unless the deadline comes first; its last line,
# when it is a JSON document, goes to results.jsonl
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((deadline_s - ($(date +%s) - start)))
    if [ "$limit" -gt "$left" ]; then
        echo "== $name: not started ($limit s asked, $left s left)"
        return
    fi
    echo "== $name ($limit s at most, $left s left): $*"
    local begun=$(date +%s)
    timeout "$limit" "$@" > "/tmp/$name.out" 2>&1
    local status=$?
    cat "/tmp/$name.out"
    tail -n 1 "/tmp/$name.out" | grep '^{' >> "$out/results.jsonl"
    echo "== $name: exit $status in $(($(date +%s) - begun)) s"
}

step tests 100 python3 -m pytest -q -p no:cacheprovider tests/test_devices.py tests/test_memory.py \
    tests/test_energy.py tests/test_loading.py "tests/test_sweep.py::test_cuda_sweep_records_allocator_peaks"
step batch 90 python3 benchmarks/batch.py
step default_runs 220 python3 benchmarks/gpu.py /tmp/runs
tar -czf "$out/runs.tar.gz" --exclude '*.html' -C /tmp runs 2>/dev/null
gpt2_run=$(ls -d /tmp/runs/*/gpt2 2>/dev/null | head -n 1)
[ -n "$gpt2_run" ] && step batch_fit 60 python3 benchmarks/batch_fit.py --run "$gpt2_run"
step extend 45 python3 benchmarks/extend.py
step filled_cache 45 python3 benchmarks/filled_cache.py
step first_pass 60 python3 benchmarks/gpu_first_pass.py
step validate 100 python3 benchmarks/validate_gpt2.py --fits /tmp/runs/fits --out /tmp/validate
step validate_parallel 150 python3 benchmarks/validate_gpt2.py --schedule parallel --fits /tmp/runs/fits \
    --out /tmp/validate
step validate_prefix 120 python3 benchmarks/validate_gpt2.py --prefix-cache on --fits /tmp/runs/fits --out /tmp/validate
step two_speeds 40 python3 benchmarks/gpu_two_speeds.py
step energy_counter 40 python3 benchmarks/gpu_energy_counter.py
step spend_left 230 python3 benchmarks/spend_left.py --pairs 2
echo "== session: $(($(date +%s) - start)) s"
