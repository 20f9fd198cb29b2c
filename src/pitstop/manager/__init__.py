"""Several services at once (`pitstop up`): the service graph, one Supervisor per service on one
loop, their states. The supervisor/ package runs one service; this package orders them, shares
their builds and routes file changes to them."""
