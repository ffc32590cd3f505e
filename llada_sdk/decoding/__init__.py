"""Decoding: the array namespace (numpy or torch), the policies as pure functions, the parallel-decoding
rules registry, the engine's loop, step-level request batching and the likelihood estimators. No torch
import at module level, no tokenizer: everything here works on token ids."""
