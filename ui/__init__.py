"""The Gradio user interface: one module per tab, composed by app.py.

Only this package and app.py import Gradio; everything they show is computed
by qgoft_core (the library) from plain data.
"""
