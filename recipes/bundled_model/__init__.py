"""The bundled model (``llada_sdk/bundled/llada-tiny-kb``): its synthetic corpus, training rows, phases and evaluation."""
