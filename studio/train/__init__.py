"""The train stage. The recipe runs in its own process (`python -m studio.train.worker RUN_DIR`) so that an
out-of-memory error, a crashing kernel or a cancel can never take the GUI down, and every byte of GPU memory
is returned when it exits. `launch` starts and watches that process; `events` is the stream it writes."""
from studio.train.launch import TrainingProcess, run_training, start_training
from studio.train.runs import create_run, latest_run, load_run_project

__all__ = ["TrainingProcess", "run_training", "start_training", "create_run", "latest_run", "load_run_project"]
