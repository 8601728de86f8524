"""A logger output that keeps every dump in memory, for tests that check what was logged."""

from stable_baselines3.common.logger import KVWriter


class MemoryWriter(KVWriter):
    """Keeps every dump in memory."""

    def __init__(self):
        self.dumps: list[dict] = []

    def write(self, key_values, key_excluded, step=0):
        self.dumps.append(dict(key_values))

    def close(self):
        pass
