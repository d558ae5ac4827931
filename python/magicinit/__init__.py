"""magicinit: data-dependent initialisation of PyTorch CNNs with MagicInit.

    report = magicinit.initialize(model, inputs)     # weights set in place
    magicinit.plot_report(report, "figure1.png")     # the paper's Figure 1

Krähenbühl, Doersch, Donahue, Darrell, "Data-dependent Initializations of Convolutional
Neural Networks", ICLR 2016.
"""
from ._coordinator import MagicInitError, coordinator_options, find_coordinator
from ._initialize import initialize
from ._plot import plot_report

__all__ = ["initialize", "plot_report", "MagicInitError", "find_coordinator", "coordinator_options"]
