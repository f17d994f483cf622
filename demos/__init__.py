"""qGOFT Explorer demos: built-in data sets and the app's helpers."""
