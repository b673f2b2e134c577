"""The device side of every engine: a cohort of messages in, one reply per device out.

For a round's training message each device builds its data window at the
round's simulated start; the method's device half then answers the whole
cohort at once (batched, or one device at a time); each device's reply is
then metered on its own: the bytes it received and sent (serialized size of
its records, plus what the scenario's transport adds on the wire), the FLOPs
it computed and the backward passes it ran. From
those and its own network and compute profile it works out the round's
simulated duration; if that misses the deadline it keeps its old state, as a
real device whose upload never arrived would. For an evaluation message it
scores what it serves on fresh samples from its current distribution
(test-then-adapt; not billed). Control queries register a device and read or
replace its state.

Engines differ only in where this runs: in the cloud's process (``inline``),
in long-lived Ray actors that own a shard of the fleet each (``ray``), or
inside Flower's own ClientApp, one message at a time (``flower``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import torch
from flwr.app import ConfigRecord, Error, Message, RecordDict
from flwr.clientapp.client_app import ClientAppException
from flwr.common.constant import ErrorCode

from basemodel.threads import fixed_threads
from simulator.catalog.energy import device_energy
from simulator.catalog.seeding import torch_seed_for
from simulator.engine import protocol
from simulator.engine.deployment import Deployment
from simulator.engine.failures import WENT_OFFLINE, DeviceCrash, DeviceOffline
from simulator.engine.faults import MessageDropped, corrupt, draw_fault
from simulator.engine.metering import message_size
from simulator.engine.scoring import device_score, ranking_scores
from simulator.engine.state import StateStore, decode_state, encode_state
from simulator.world.build import new_model
from simulator.world.fleet import crashes
from simulator.world.network import round_timing
from simulator.world.transport import MessageSize
from strategies import wire
from strategies.base import DeviceStep, ServeStep, TrainOutcome, TwoPhaseDevice
from strategies.device_kit import ArrayCache, DeviceKit

Batch = Sequence[tuple[int, Message]]  # (fleet device index, message to it)
RANKING_CASES = 4  # HR@k / NDCG@k cases per evaluated device and tick (click streams)


def device_threads() -> AbstractContextManager[None]:
    """Device compute runs on one thread, on every engine (keeps results identical)."""
    return fixed_threads(1)


def error_reply(message: Message, err: Exception) -> Message:
    """The error reply Flower's simulation runtime makes when a ClientApp raises."""
    wrapped = ClientAppException(str(err))
    reason = str(type(wrapped)) + ":<'" + str(wrapped) + "'>"
    return Message(
        Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=message
    )


def _meter_reply(message: Message, meter: dict, content: RecordDict | None = None) -> Message:
    reply = RecordDict(dict(content.items())) if content is not None else RecordDict()
    reply[protocol.SIM_METER] = ConfigRecord(meter)
    return Message(reply, reply_to=message)


class DeviceRuntime:
    """Answers batches of messages for the devices whose state ``store`` keeps.

    ``raise_errors``: let a device's exception propagate instead of turning it
    into an error reply (inside Flower's ClientApp, which makes that reply).
    """

    def __init__(self, deployment: Deployment, store: StateStore, raise_errors: bool = False):
        self.deployment = deployment
        self.world = deployment.world
        self.half = deployment.method.device
        self.params = deployment.params
        self.store = store
        self.raise_errors = raise_errors
        self.kit = DeviceKit(
            model=new_model(self.world.scenario).eval(),
            pretrained=self.world.pretrained,
            forward_flops_per_sample=self.world.forward_flops,
            backbone_flops_per_sample=self.world.backbone_flops,
            cohort_device=_cohort_device(self.world.scenario.engine.cohort_device),
        )
        self._handlers: dict[str, Callable[[Batch], list[Message]]] = {
            "train": self._train,
            wire.TRAIN_APPLY: self._apply,
            "evaluate": self._evaluate,
            protocol.QUERY_REGISTER: self._register,
            protocol.QUERY_SNAPSHOT: self._snapshot,
            protocol.QUERY_RESTORE: self._restore,
            protocol.QUERY_POLL: self._poll,
        }

    def handle(self, batch: Batch) -> list[Message]:
        """One reply per message of ``batch``, in its order; message types may be mixed."""
        replies: list[Message | None] = [None] * len(batch)
        kinds: dict[str, list[int]] = {}
        for i, (_, message) in enumerate(batch):
            kinds.setdefault(message.metadata.message_type, []).append(i)
        for kind, members in kinds.items():
            handler = self._handlers.get(kind)
            part = [batch[i] for i in members]
            if handler is None:
                raise ValueError(f"device runtime: unknown message type {kind!r}")
            with device_threads():
                answered = handler(part)
            for i, reply in zip(members, answered, strict=True):
                replies[i] = reply
        return [r for r in replies if r is not None]

    # -- a device that fails ----------------------------------------------------------
    def _failed(self, message: Message, err: Exception) -> Message:
        if self.raise_errors:
            raise err
        return error_reply(message, err)

    def _compute(self, compute: Callable[[Sequence], list], steps: list) -> list | Exception:
        """``compute(steps)``; if the method raises, every device of the cohort fails with it."""
        if not steps:
            return []
        try:
            return compute(steps)
        except Exception as err:  # a method bug fails its devices, not the run
            if self.raise_errors:
                raise
            return err

    # -- training, first phase ----------------------------------------------------------
    def _train(self, part: Batch) -> list[Message]:
        replies: list[Message | None] = [None] * len(part)
        arrays = ArrayCache()
        downloads: dict[int, MessageSize] = {}
        steps, members, starts = [], [], []
        for j, (device, message) in enumerate(part):
            try:
                profile = self.world.fleet[device]
                sim = message.content[protocol.SIM_CONFIG]
                round_index, start_s = int(sim[protocol.ROUND]), float(sim[protocol.START_S])
                if crashes(profile, round_index, self.world.seed):
                    raise DeviceCrash(f"simulated crash of device {device} in round {round_index}")
                window = self.world.streams.window(profile, start_s)
                steps.append(
                    DeviceStep(
                        message.content,
                        window.inputs,
                        (window.labeled_x, window.labeled_y),
                        self.store.get(device).view,
                        self.kit,
                        self.params,
                        torch_seed_for(self.world.seed, "device-train", device, round_index),
                        arrays,
                    )
                )
                members.append(j)
                starts.append(start_s)
            except Exception as err:
                replies[j] = self._failed(message, err)
        outcomes = self._compute(self.half.train, steps)
        final = not self.deployment.method.two_phase
        for k, j in enumerate(members):
            device, message = part[j]
            try:
                if isinstance(outcomes, Exception):
                    raise outcomes
                outcome, stall_s = self._inject_fault(device, message, outcomes[k])
                download = self._download_size(message, downloads)
                replies[j] = self._finish(
                    device, message, outcome, starts[k], 0.0, download, final, stall_s
                )
            except Exception as err:
                replies[j] = self._failed(message, err)
        return [r for r in replies if r is not None]

    def _inject_fault(
        self, device: int, message: Message, outcome: TrainOutcome
    ) -> tuple[TrainOutcome, float]:
        """The scenario's injected fault for this device-round, applied to its honest reply."""
        sim = message.content[protocol.SIM_CONFIG]
        round_index = int(sim[protocol.ROUND])
        fault = draw_fault(self.world.scenario.fleet.faults, device, round_index, self.world.seed)
        if fault == "drop":
            raise MessageDropped(
                f"injected fault: reply of device {device} lost in round {round_index}"
            )
        if fault == "hang":
            return outcome, float(sim[protocol.DEADLINE_S])  # stalls until past the deadline
        if fault in ("malformed", "nonfinite"):
            corrupted = corrupt(outcome.reply, fault, device, round_index, self.world.seed)
            return TrainOutcome(
                corrupted, outcome.held, outcome.flops, outcome.backward_passes, outcome.records
            ), 0.0
        return outcome, 0.0

    @staticmethod
    def _download_size(message: Message, seen: dict[int, MessageSize]) -> MessageSize:
        """Billed size of a message's payload; a content shared by many messages is sized once."""
        content = message.content
        if id(content) not in seen:
            seen[id(content)] = message_size(content, exclude=protocol.SIM_KEYS)
        return seen[id(content)]

    def _finish(
        self,
        device: int,
        message: Message,
        outcome: TrainOutcome,
        start_s: float,
        elapsed_s: float,
        download: MessageSize,
        final: bool,
        stall_s: float = 0.0,
    ) -> Message:
        """Meter a phase, apply the deadline, commit state if on time, build the reply.

        ``elapsed_s`` is the simulated time of an earlier phase of the round;
        ``stall_s`` time lost to an injected hang.
        """
        sim = message.content[protocol.SIM_CONFIG]
        profile = self.world.fleet[device]
        timing = round_timing(
            profile,
            self.world.links,
            self.world.transport,
            start_s + elapsed_s,
            download,
            outcome.flops,
            message_size(outcome.reply),
        )
        total_s = elapsed_s + timing.total_s + stall_s
        on_time = total_s <= float(sim[protocol.DEADLINE_S])
        behaviours = self.world.behaviours  # the round's span, earlier phase included
        if (
            behaviours is not None
            and on_time
            and not behaviours[device].online_through(start_s, start_s + total_s)
        ):
            raise DeviceOffline(
                f"device {device} {WENT_OFFLINE} in round {int(sim[protocol.ROUND])}"
            )
        energy = device_energy(
            profile,
            outcome.flops,
            timing.download_bytes,
            timing.upload_bytes,
            timing.download_s,
            timing.upload_s,
        )
        if on_time:
            state = self.store.get(device)
            if final:
                if outcome.held is not None:
                    state.held = outcome.held
                for key, record in (outcome.records or {}).items():
                    state.records[key] = record
                state.phase = None
            else:
                state.phase = (int(sim[protocol.ROUND]), total_s)
            self.store.put(device, state)
        meter = {
            protocol.DEVICE: device,
            protocol.STATUS: protocol.STATUS_OK if on_time else protocol.STATUS_LATE,
            protocol.DOWNLOAD_BYTES: timing.download_bytes,
            protocol.UPLOAD_BYTES: timing.upload_bytes,
            protocol.FLOPS: float(outcome.flops),
            protocol.BACKWARD_PASSES: outcome.backward_passes,
            protocol.DOWNLOAD_S: timing.download_s,
            protocol.COMPUTE_S: timing.compute_s,
            protocol.UPLOAD_S: timing.upload_s,
            protocol.LATENCY_S: timing.latency_s,
            protocol.TOTAL_S: total_s,
            protocol.ENERGY_J: energy.total_j,
            protocol.ENERGY_COMPUTE_J: energy.compute_j,
        }
        return _meter_reply(message, meter, outcome.reply)

    # -- training, second phase ---------------------------------------------------------
    def _apply(self, part: Batch) -> list[Message]:
        """A two-phase method's second step: the cloud's answer to this round's reply."""
        replies: list[Message | None] = [None] * len(part)
        half = self.half
        arrays = ArrayCache()
        nothing = torch.empty(0)
        steps, members, phases = [], [], []
        for j, (device, message) in enumerate(part):
            try:
                if not isinstance(half, TwoPhaseDevice):
                    raise RuntimeError(f"{self.deployment.method.name} has no second phase")
                round_index = int(message.content[protocol.SIM_CONFIG][protocol.ROUND])
                state = self.store.get(device)
                if state.phase is None or state.phase[0] != round_index:
                    raise RuntimeError(
                        f"device {device}: second phase without a first in round {round_index}"
                    )
                steps.append(
                    DeviceStep(
                        message.content,
                        nothing,
                        (nothing, nothing.long()),
                        state.view,
                        self.kit,
                        self.params,
                        torch_seed_for(self.world.seed, "device-train", device, round_index),
                        arrays,
                    )
                )
                members.append(j)
                phases.append(state.phase[1])
            except Exception as err:
                replies[j] = self._failed(message, err)
        outcomes = self._compute(half.apply, steps) if isinstance(half, TwoPhaseDevice) else []
        for k, j in enumerate(members):
            device, message = part[j]
            try:
                if isinstance(outcomes, Exception):
                    raise outcomes
                sim = message.content[protocol.SIM_CONFIG]
                start_s = float(sim[protocol.START_S])
                waited_s = float(sim[protocol.CLOUD_S]) if protocol.CLOUD_S in sim else 0.0
                download = message_size(message.content, exclude=protocol.SIM_KEYS)
                elapsed_s = phases[k] + waited_s  # the first phase, then the cloud's answer
                replies[j] = self._finish(
                    device, message, outcomes[k], start_s, elapsed_s, download, True
                )
            except Exception as err:
                replies[j] = self._failed(message, err)
        return [r for r in replies if r is not None]

    # -- evaluation ---------------------------------------------------------------------
    def _evaluate(self, part: Batch) -> list[Message]:
        """Score what each device serves on fresh samples from its current distribution.

        The method picks what to serve from the unlabeled inputs alone
        (``predict``); the labels only score the prediction.
        """
        steps, labels = [], []
        for device, message in part:
            time_s = float(message.content[protocol.SIM_CONFIG][protocol.START_S])
            x, y = self.world.streams.eval_batch(self.world.fleet[device], time_s)
            steps.append(ServeStep(self.store.get(device).view, x, self.kit, self.params))
            labels.append(y)
        with torch.inference_mode():
            logits = self._compute(self.half.predict, steps)
        replies = []
        for k, (device, message) in enumerate(part):
            if isinstance(logits, Exception):
                replies.append(self._failed(message, logits))
                continue
            y = labels[k]
            score = device_score(self.world.scenario.task, logits[k], y)
            meter = {protocol.DEVICE: device, protocol.ACCURACY: score, protocol.SAMPLES: len(y)}
            if not bool(torch.isfinite(logits[k]).all()):
                meter[protocol.NONFINITE] = 1  # a diverged model: its score is not meaningful
            meter.update(self._ranking(device, message, steps[k]))
            replies.append(_meter_reply(message, meter))
        return replies

    def _ranking(self, device: int, message: Message, step: ServeStep) -> dict[str, float]:
        """HR@k / NDCG@k of what the device serves (click streams only; else nothing).

        The device decides what to serve from its evaluation inputs, as for its
        main score; that model then ranks the cases.
        """
        time_s = float(message.content[protocol.SIM_CONFIG][protocol.START_S])
        cases = self.world.streams.ranking_cases(self.world.fleet[device], time_s, RANKING_CASES)
        if not cases:
            return {}
        with torch.inference_mode():
            model = self.kit.load(self.half.serving_weights(step))
            return ranking_scores(model, cases)

    # -- requests between rounds ----------------------------------------------------------
    def _poll(self, part: Batch) -> list[Message]:
        """Whether each device asks for service now, and what asking cost it.

        Only devices holding state are asked (the method's test needs what it
        holds); an asking device uploads a small request, metered and billed
        like any upload; the test itself reuses features the device computes
        to predict anyway, so it costs no extra FLOPs.
        """
        steps, members = [], []
        for j, (device, message) in enumerate(part):
            state = self.store.get(device)
            if state.is_empty():
                continue
            start_s = float(message.content[protocol.SIM_CONFIG][protocol.START_S])
            window = self.world.streams.window(self.world.fleet[device], start_s)
            steps.append(ServeStep(state.view, window.inputs, self.kit, self.params))
            members.append(j)
        with torch.inference_mode():
            asks = self._compute(self.half.requests_service, steps)
        failed = isinstance(asks, Exception)  # a method bug: its devices' polls fail
        asking = set() if failed else {members[k] for k, a in enumerate(asks) if a}
        replies = []
        for j, (device, message) in enumerate(part):
            if failed and j in members:
                replies.append(self._failed(message, asks))
                continue
            meter: dict = {protocol.DEVICE: device, protocol.REQUEST: int(j in asking)}
            content = RecordDict({protocol.REQUEST: ConfigRecord({protocol.DEVICE: device})})
            if j in asking:
                profile = self.world.fleet[device]
                start_s = float(message.content[protocol.SIM_CONFIG][protocol.START_S])
                timing = round_timing(
                    profile,
                    self.world.links,
                    self.world.transport,
                    start_s,
                    None,
                    0.0,
                    message_size(content),
                )
                # One radio session: what comes back while the request goes up (a
                # runtime's answer and acknowledgements) wakes the radio no second time.
                energy = device_energy(
                    profile,
                    0.0,
                    0,
                    timing.upload_bytes + timing.download_bytes,
                    0.0,
                    timing.upload_s,
                )
                meter.update(
                    {
                        protocol.UPLOAD_BYTES: timing.upload_bytes,
                        protocol.ENERGY_J: energy.total_j,
                    }
                )
                if timing.download_bytes:  # a runtime's answer to the request
                    meter[protocol.DOWNLOAD_BYTES] = timing.download_bytes
            replies.append(_meter_reply(message, meter))
        return replies

    # -- simulator control ------------------------------------------------------------
    def _register(self, part: Batch) -> list[Message]:
        """Tell the cloud which fleet device each node simulates."""
        return [_meter_reply(message, {protocol.DEVICE: device}) for device, message in part]

    def _snapshot(self, part: Batch) -> list[Message]:
        """Report each device's persistent state (for a checkpoint); between rounds only."""
        return [
            _meter_reply(message, {protocol.DEVICE: device}, encode_state(self.store.get(device)))
            for device, message in part
        ]

    def _restore(self, part: Batch) -> list[Message]:
        """Replace each device's state with a checkpoint's (on resume)."""
        for device, message in part:
            records = RecordDict(
                {k: v for k, v in message.content.items() if k not in protocol.SIM_KEYS}
            )
            self.store.put(device, decode_state(records))
        return self._register(part)


def _cohort_device(name: str | None) -> torch.device | None:
    """The torch device a cohort's work runs on as one batch (None: per device)."""
    return None if name is None else torch.device(name)
