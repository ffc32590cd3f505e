"""Text services on top of the engine: canvases from text and back, the streaming runner, infilling and
the ``[MASK:auto]`` search, scoring, multi-turn chat, schema-exact JSON, the tool-call format, one
assistant turn for every front end, and argument checks."""
