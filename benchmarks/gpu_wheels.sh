#!/usr/bin/env bash
# The wheels a lent GPU machine lacks, downloaded into .whl/ (ignored through .git/info/exclude) for
# benchmarks/gpu_session.sh, which installs them there: that machine reaches no package registry. Its image
# (2026-12: Python 3.12, torch 2.11, transformers 5.17) holds the rest; these are the versions this project's set-up
# installs here (`.venv`), transformers' own needs included. Hub kernels (`kernels`) are left out: the profiler
# switches them off.
#
# Run from the repository root:  bash benchmarks/gpu_wheels.sh
set -eu
packages="transformers==5.25.0 huggingface_hub==2.4.0 hf-xet==1.8.0 click==8.5.1 regex==2026.11.19
          httpx2==2.16.2 httpcore2==2.16.2 truststore==0.10.5
          jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1"
mkdir -p .git/info .whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
for package in $packages; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$package"
done
ls .whl
