"""Dynamic legality checks: run a submission on a canary validation set under a tracer.

canary   the validation set of i.i.d. tokens, its generator's exact likelihood, its index
shim/    child-side code put on the script's PYTHONPATH (device shim, tracer)
preset   the tiny environment that makes a record script run on a CPU
harness  one traced run of a script through a sandbox runtime
ledger   reading the tracer's output; C3/C4 from the order of score and update events
evidence the canary bound (Ville's inequality) and the byte recount
"""
