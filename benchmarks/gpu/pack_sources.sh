#!/bin/bash
# Run where pip can reach PyPI, no compiling: fetch the llama-cpp-python 0.3.36 sdist, take vendor/llama.cpp, strip what a
# CUDA build of llama-server does not need, repack to .devcarry/llama.cpp-src.tar.gz (176 MB tree -> 33 MB -> 6.0 MB tgz).
set -e
DEST=${1:-$PWD/.devcarry}
T=${TMPDIR:-/tmp}/gpuwork
mkdir -p $T && cd $T
[ -e llama_cpp_python-0.3.36.tar.gz ] || pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d $T
tar xzf llama_cpp_python-0.3.36.tar.gz 'llama_cpp_python-0.3.36/vendor/llama.cpp'
rm -rf strip && mkdir strip && cp -a llama_cpp_python-0.3.36/vendor/llama.cpp strip/llama.cpp
cd strip/llama.cpp
rm -rf docs media benches tests examples pocs skills ci conversion convert_*.py requirements requirements.txt flake.nix \
       build-xcframework.sh AUTHORS CODEOWNERS CONTRIBUTING.md SECURITY.md AGENTS.md CLAUDE.md
find models -mindepth 1 -maxdepth 1 ! -name ggml-vocab-qwen2.gguf -exec rm -rf {} +     # keep the Qwen2 vocab GGUF
(cd ggml/src && rm -rf ggml-cann ggml-et ggml-hexagon ggml-hip ggml-metal ggml-musa ggml-opencl ggml-openvino \
                       ggml-sycl ggml-virtgpu ggml-vulkan ggml-webgpu ggml-zdnn ggml-zendnn)
# the web UI: keep only what tools/ui/CMakeLists.txt needs to emit an empty asset table (LLAMA_BUILD_UI=OFF, no prebuilt)
(cd tools/ui && find . -mindepth 1 -maxdepth 1 ! -name CMakeLists.txt ! -name ui.cpp.in ! -name ui.h.in ! -name sources.cmake -exec rm -rf {} +)
rm -rf tools/server/tests tools/server/bench tools/mtmd/test-* tools/mtmd/tests tools/mtmd/tests.sh
find . -name '*.md' -size +20k -delete
cd .. && tar czf $DEST/llama.cpp-src.tar.gz llama.cpp   # gguf-py/ (pure-Python GGUF writer) stays in
ls -la $DEST/llama.cpp-src.tar.gz
