"""The parsers against random and mutated input (the Go parsers have fuzz
targets; this is the SDK's equivalent): every input is either accepted or
refused with the parser's own error, never another exception."""

import random
import unittest
from datetime import datetime, timezone

from peapod import DescriptorError, parse_reply, parse_response, verify_descriptor
from peapod.envelope import ReplyError
from peapod.frames import FrameError

from .test_vectors import load


def mutate(b: bytes, rand: random.Random) -> bytes:
    out = bytearray(b)
    for _ in range(rand.randint(1, 4)):
        at = rand.randint(0, len(out))
        op = rand.randrange(4)
        if op == 0 and at < len(out):
            out[at] = rand.randrange(256)
        elif op == 1 and at < len(out):
            del out[at]
        elif op == 2:
            out.insert(at, rand.randrange(256))
        else:
            del out[at:]
    return bytes(out)


class Robustness(unittest.TestCase):
    def test_reply_and_frame_parsers(self):
        rand = random.Random(1)
        replies = [v["body"].encode() for v in load("framework/envelope/testdata/vectors.json")["replies"] if v.get("body")]
        frames = [bytes.fromhex(v["frame_hex"]) for v in load("wsapi/testdata/vectors.json")["responses"]]
        for i in range(3000):
            for parse, seeds, own in ((parse_reply, replies, ReplyError), (parse_response, frames, FrameError)):
                data = mutate(seeds[i % len(seeds)], rand)
                try:
                    parse(data)
                except own:
                    pass
                except Exception as e:  # noqa: BLE001 - the point of the test
                    self.fail(f"{parse.__name__}({data.hex()}): {e!r}")

    def test_descriptor_verification(self):
        rand = random.Random(2)
        docs = [v["document"].encode() for v in load("framework/descriptor/testdata/vectors.json")["vectors"]]
        now = datetime(2025, 6, 1, 13, tzinfo=timezone.utc)
        accepted = 0
        for i in range(600):
            data = mutate(docs[i % len(docs)], rand)
            try:
                verify_descriptor(data, now=now)
                accepted += 1
            except DescriptorError:
                pass
            except Exception as e:  # noqa: BLE001
                self.fail(f"{data!r}: {e!r}")
        self.assertLess(accepted, 60)


if __name__ == "__main__":
    unittest.main()
