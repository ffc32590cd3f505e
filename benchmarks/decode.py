"""Decoding speed side by side: no cache / prefix / dual x fixed steps / threshold / factor / entropy bound.

The same run as ``llada bench --decode`` (``llada_sdk/decode_bench.py`` has the code and the options):

    python benchmarks/decode.py [--threads 2] [--gen 64 256 1024] [--medium-gen 64 256 1024] [--eval] [--compile]
"""

from llada_sdk.decode_bench import main

if __name__ == "__main__":
    main(prog="python benchmarks/decode.py")
