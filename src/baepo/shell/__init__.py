"""The one place that starts processes: commands are built as argv data, run by a Runner."""
