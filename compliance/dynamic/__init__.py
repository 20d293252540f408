"""Dynamic legality checks: run a submission on a canary validation set under a tracer.

canary   the validation set of i.i.d. tokens and its generator's exact likelihood
shim/    child-side code put on the script's PYTHONPATH: device shim, tracer, taint, launcher
preset   the tiny environment that makes a record script run on a CPU (preset.yaml)
knobs    what a script's knobs are and what they drive, by data flow in its decoded source
eval_preset  caps on evaluation work (eval_preset.yaml), from those knobs
plan     what a traced run is set to: the run's own configuration, the presets, --set
budget   the run watched through its ledger; a smaller canary when it cannot finish
harness  one traced run of a script through a sandbox runtime
ledger   reading the tracer's output; C3/C4 from the order and data flow of scores and updates
evidence the canary bound (Ville's inequality) and the byte recount
margin   what loss arithmetic alone moves a mean (the canary check's numeric margin)
context  what a dynamic check function sees (compliance/checks/dynamic.py holds the checks)
"""
