"""EMA-crossover signal model: the bundled demo script.

Subscribes to TradeTick, keeps a fast and a slow exponential moving average of the
price per symbol, and publishes a Signal whenever they cross.

    mycelium-host --script scripts/examples/model.py --demo-feed 50000 --duration 5
"""

import logging

import mycelium_native as mn
from mycelium_native.messages import Signal, TradeTick

FAST_PERIOD = 5
SLOW_PERIOD = 20

log = logging.getLogger("model")


class EmaCrossover:
    """Per-symbol fast/slow EMAs; emits +1/-1 when the fast one crosses the slow one."""

    def __init__(self, fast=FAST_PERIOD, slow=SLOW_PERIOD):
        self.fast_alpha = 2.0 / (fast + 1)
        self.slow_alpha = 2.0 / (slow + 1)
        self.state = {}  # symbol -> [fast_ema, slow_ema, direction]
        self.ticks = 0
        self.signals = 0

    def on_tick(self, tick):
        self.ticks += 1
        state = self.state.get(tick.symbol)
        if state is None:
            self.state[tick.symbol] = [tick.price, tick.price, 0]
            return
        state[0] += (tick.price - state[0]) * self.fast_alpha
        state[1] += (tick.price - state[1]) * self.slow_alpha
        direction = 1 if state[0] > state[1] else -1 if state[0] < state[1] else 0
        if direction and direction != state[2]:
            state[2] = direction
            self.signals += 1
            mn.publish(Signal(symbol=tick.symbol, fast_ema=state[0], slow_ema=state[1],
                              direction=direction, tick_seq=tick.seq, ts_ns=tick.ts_ns))


model = EmaCrossover()
runtime = mn.Runtime(service_name="model")
runtime.subscribe(TradeTick, model.on_tick)


@mn.every(1.0)
def report():
    log.info("%d ticks in, %d signals out, %d symbols", model.ticks, model.signals, len(model.state))


@mn.on_stop
def summary():
    print(f"model: {model.ticks} ticks in, {model.signals} signals out", flush=True)
