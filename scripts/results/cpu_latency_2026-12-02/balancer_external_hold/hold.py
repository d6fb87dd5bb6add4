"""Holds a PM QoS CPU latency limit (µs, default 0) until killed: what ran beside the bench at 14:51 UTC.

The statements are those that ran; only their layout was changed afterwards, for ruff.
"""

import os
import struct
import sys
import time

fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
os.write(fd, struct.pack("i", int(sys.argv[1]) if len(sys.argv) > 1 else 0))
time.sleep(100000)
