"""The Gradio UI: one module per tab. Only this package imports gradio."""
