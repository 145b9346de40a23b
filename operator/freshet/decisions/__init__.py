"""Pure decisions of the operator: plain data in, plain data out, no I/O.

The kopf handlers gather facts and act; everything that decides (whether to
train, what a run is called and trains on, whether a candidate goes live, what
the conditions say) lives here and is unit-tested without a cluster.
"""
