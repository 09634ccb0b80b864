"""The reference for `hiwar bench tts`: Python Piper (PyPI piper-tts 1.8) with the same voice.

    python piper_ref.py MODEL.onnx REPS SENTENCE...

For each sentence and repetition prints one JSON line:
{"sentence": i, "first_ms": time to the first audio chunk, "total_ms": time to all audio,
 "audio_s": seconds of audio}.
"""

import json
import sys
import time

from piper import PiperVoice


def main() -> None:
    model, reps, sentences = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    voice = PiperVoice.load(model)
    # Warm up once, as hiwar's voice is warm when it speaks.
    for _ in voice.synthesize("Warm up."):
        pass
    for i, text in enumerate(sentences):
        for _ in range(reps):
            start = time.perf_counter()
            first = None
            samples = 0
            rate = 22050
            for chunk in voice.synthesize(text):
                if first is None:
                    first = time.perf_counter() - start
                samples += len(chunk.audio_int16_array)
                rate = chunk.sample_rate
            total = time.perf_counter() - start
            print(json.dumps({"sentence": i, "first_ms": first * 1e3, "total_ms": total * 1e3, "audio_s": samples / rate}), flush=True)


if __name__ == "__main__":
    main()
