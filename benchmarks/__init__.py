"""Benchmarks of the qGOFT adapters against PEFT methods (see step_time.py)."""
