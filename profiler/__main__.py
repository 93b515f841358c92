from profiler.cli.main import run_and_exit

run_and_exit()
