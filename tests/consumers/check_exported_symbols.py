#!/usr/bin/env python3
"""Fails unless every symbol that libqat.so exports is a qat_* C function or
belongs to the qat:: C++ namespace.  Usage: check_exported_symbols.py LIB"""
import re
import subprocess
import sys

# Mangled names in namespace qat: functions, members and data (_ZN3qat,
# _ZNK3qat), and typeinfo and vtables of qat types (_ZT[ISV]N3qat).
ALLOWED = re.compile(r"^(qat_\w+|_ZNK?3qat\w*|_ZT[ISV]N3qat\w*)$")


def main():
    lib = sys.argv[1]
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    names = [line.split()[-1] for line in out.splitlines() if line.strip()]
    bad = [n for n in names if not ALLOWED.match(n)]
    c_api = [n for n in names if n.startswith("qat_")]
    if not c_api:
        print("no qat_* symbol exported at all")
        return 1
    if bad:
        demangled = subprocess.run(["c++filt"], input="\n".join(bad),
                                   capture_output=True, text=True).stdout
        print(f"{len(bad)} unexpected exported symbols:\n{demangled}")
        return 1
    print(f"{len(names)} exported symbols, all qat_* or qat::; C ABI: "
          + ", ".join(sorted(c_api)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
