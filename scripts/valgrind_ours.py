"""Reads a valgrind log and fails on the records whose stack passes through Woolly: definite
leaks and memory errors. Records from the interpreter alone are summarised, not counted, and so
are those made once while Node registers the addon (napi-rs keeps a reference to each exported
class for the life of the process: a fixed 40 bytes per class, not a leak that grows)."""

import re
import sys

OURS = re.compile(r"woolly|_woolly|\.node\b|libwoolly")
ONCE = re.compile(r"napi_register_module_v1")
KINDS = re.compile(
    r"definitely lost in loss record|Invalid (read|write|free)|uninitialised|Mismatched free|"
    r"Source and destination overlap"
)


def records(lines):
    rec = []
    for line in lines:
        body = re.sub(r"^==\d+== ?", "", line.rstrip("\n"))
        if body == "":
            if rec:
                yield rec
            rec = []
        else:
            rec.append(body)
    if rec:
        yield rec


def main(path):
    with open(path, errors="replace") as f:
        lines = f.readlines()
    ours, theirs, once = [], 0, 0
    for rec in records(lines):
        if not KINDS.search(rec[0]):
            continue
        if "definitely lost" in rec[0] and any(ONCE.search(l) for l in rec[1:]):
            once += 1
        elif any(OURS.search(l) for l in rec[1:]):
            ours.append(rec)
        else:
            theirs += 1
    summary = [l for l in lines if "definitely lost:" in l or "ERROR SUMMARY" in l]
    print(f"{path}: {len(ours)} record(s) of Woolly's, {theirs} of the interpreter's, "
          f"{once} of the addon's registration; "
          + " ".join(s.split("== ")[-1].strip() for s in summary))
    for rec in ours[:10]:
        print("\n".join("    " + l for l in rec[:30]))
        print()
    if not any("ERROR SUMMARY" in l for l in lines):
        print(f"{path}: valgrind did not finish (no summary)")
        return 1
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
