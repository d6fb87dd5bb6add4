"""tritonbench: clients and load generation for Triton text models built by tritonbuild.

The stages of a measurement, in the order they run:
- targets/     what a served model takes and its limits, and the requests of each point;
- generators/  load generators behind one interface (tritonbench's own, perf_analyzer);
- transport/   typed text clients, which servers a sweep talks to, their statistics and GPU metrics;
- points.py    one point: a shape under one load (the one description of a load);
- records.py   one PointRecord per point, built by one constructor, in a resumable JSON Lines store;
- report/      CSV, Markdown tables, comparisons and charts declared as data;
- sweep.py     the grid, each point measured by the chosen generator; cli.py and arguments.py the command line;
- experiments/ the study, which composes the builder and the client.
"""
