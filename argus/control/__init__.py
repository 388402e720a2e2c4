"""The control plane: prediction, planning, alignment and dispatch, shared by the live runtime
and the simulator."""
