"""Writing a Triton model repository: plan it as data, then stage and publish it whole.

plan.py is the pure function from options to model folders (configs and files); modelconfig.py types
the configs and checks an ensemble's wiring, render.py writes them through strict Jinja templates and
parses them back; pipeline.py turns make-repo, export and validate into lists of steps (steps.py runs
them); repo_writer.py stages inside the output folder and publishes under a lock, all or nothing, with
interrupts.py holding Ctrl-C back meanwhile.
"""
