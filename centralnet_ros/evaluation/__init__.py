"""
Evaluation shared by training and replay: numpy and matplotlib only.

- :mod:`.metrics`: accuracy, macro accuracy, confusion matrix, multi-label F1;
- :mod:`.statistics`: statistics over seeds (mean +- std, the paper's two-sample z-test);
- :mod:`.events`: event matching, precision / recall / F1, false alarms per minute, latency;
- :mod:`.plots`: PNG figures (fusion weights, accuracy per method, confusion matrix).
"""
