"""The engine room: the device ClientApp, the cloud's round loop, and the engines.

``rounds`` (the loop), ``sampling``, ``evaluation``, ``outcome`` (what replies
mean), ``rows`` (what is written), ``checkpointing`` and ``control``
(device state through the engine), ``device`` (the ClientApp), ``faults``,
``metering``, and the engines (``inline``, ``ray``, ``worker_guard``,
``launch``).
"""
