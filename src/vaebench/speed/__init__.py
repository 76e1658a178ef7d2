"""Faster forms of the specified models and loss for training and evaluation on a CPU, each the same
function (tests/test_speed.py); `runtime.fast` switches them on."""
