"""The engine room: the device ClientApp, the cloud's round loop, and the engines.

``rounds`` (the loop), ``sampling``, ``evaluation``, ``outcome`` (what replies
mean), ``rows`` (what is written), ``checkpointing`` and ``control``
(device state through the engine), ``clientapp`` and ``runtime`` (the device
side), ``protocol`` (the engine's own record keys), ``faults``, ``metering``,
and the engines (``inline``, ``ray``, ``flower``, ``worker_guard``,
``launch``).
"""
