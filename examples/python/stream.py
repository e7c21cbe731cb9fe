"""Stream a reply from the default model, with a load progress bar; Ctrl-C stops cleanly.

    python examples/python/stream.py "Write a haiku about the sea."
"""

import sys

import woolly


def progress(fraction: float) -> bool:
    bar = "=" * int(fraction * 30)
    print(f"\rloading [{bar:<30}] {fraction:4.0%}", end="", file=sys.stderr, flush=True)
    return True


def main() -> int:
    prompt = " ".join(sys.argv[1:]) or "Write a haiku about the sea."
    model = woolly.Model(progress=progress, thread_policy="interactive")
    print(file=sys.stderr)
    try:
        for piece in model.chat([{"role": "user", "content": prompt}], stream=True, max_tokens=200):
            print(piece, end="", flush=True)
    except KeyboardInterrupt:
        print("\n[stopped]", file=sys.stderr)
        return 130
    print()
    print(model.metrics(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
