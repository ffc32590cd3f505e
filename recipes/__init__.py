"""Recipes: how the bundled model was made (corpus, training phases, evaluation). Not shipped in the wheel."""
