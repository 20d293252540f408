"""The bundled reference submission: train_gpt.py is run as a script, never imported."""
