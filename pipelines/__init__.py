"""Headless stages: formats, generation, filters, rendering, training, jobs.

Each stage is a plain function or class over typed configs; stages read and write
through ``datastore``. Nothing here imports streamlit.
"""
