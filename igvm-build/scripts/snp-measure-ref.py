#!/usr/bin/env python3
"""Independent SEV-SNP launch digest of an IGVM file, for cross-checking
`igvm-build measure --platform snp`.

Shares no code with igvm-build or the igvm crate: the IGVM file is parsed here
from the IGVM specification's structure layouts, and the digest chain is the
GCTX class of the `sev-snp-measure` PyPI package (IBM), imported from its
wheel (a zip on sys.path; only its gctx module is used, which needs nothing
beyond hashlib).

Usage: snp-measure-ref.py WHEEL IGVM
Prints one line per page type used ("pages <type> <count>") and the digest
("digest <hex>"). Exit 2 on a file it cannot measure.
"""
import struct
import sys

PAGE = 4096
# Variable header types (IGVM specification).
SUPPORTED_PLATFORM = 0x001
PARAMETER_AREA = 0x301
PAGE_DATA = 0x302
PARAMETER_INSERT = 0x303
VP_CONTEXT = 0x304
PLATFORM_SEV_SNP = 2
# IGVM page-data flags and types.
FLAG_2MB, FLAG_UNMEASURED, FLAG_SHARED = 1, 2, 4
DATA_NORMAL, DATA_SECRETS, DATA_CPUID, DATA_CPUID_XF = 0, 1, 2, 3
VMSA_GPA = 0xFFFFFFFFF000


def die(msg):
    print(f"snp-measure-ref: {msg}", file=sys.stderr)
    sys.exit(2)


def headers(blob):
    magic, _ver, off, size = struct.unpack_from("<4I", blob, 0)
    if magic != 0x4D564749:
        die("not an IGVM file")
    pos, end = off, off + size
    while pos + 8 <= end:
        typ, length = struct.unpack_from("<2I", blob, pos)
        yield typ & 0x7FFFFFFF, blob[pos + 8:pos + 8 + length]
        pos += 8 + (length + 7) // 8 * 8


def main():
    if len(sys.argv) != 3:
        die("usage: snp-measure-ref.py WHEEL IGVM")
    sys.path.insert(0, sys.argv[1])
    from sevsnpmeasure.gctx import GCTX

    blob = open(sys.argv[2], "rb").read()
    hs = list(headers(blob))
    mask = None
    for typ, body in hs:
        if typ == SUPPORTED_PLATFORM:
            m, _vtl, ptype = struct.unpack_from("<IBB", body, 0)
            if ptype == PLATFORM_SEV_SNP:
                mask = m
    if mask is None:
        die("no SEV-SNP platform")

    g = GCTX()
    counts = {}
    areas = {}
    vmsa_done = False

    def count(kind):
        counts[kind] = counts.get(kind, 0) + 1

    for typ, body in hs:
        if typ == PARAMETER_AREA:
            nbytes, index = struct.unpack_from("<QI", body, 0)
            areas[index] = nbytes
            continue
        if typ not in (PAGE_DATA, PARAMETER_INSERT, VP_CONTEXT):
            continue
        gpa, m = struct.unpack_from("<QI", body, 0)
        if m & mask == 0:
            continue
        if vmsa_done:
            die("a directive follows the VMSA")
        if typ == PAGE_DATA:
            file_off, flags, dtype = struct.unpack_from("<IIH", body, 12)
            if flags & (FLAG_2MB | FLAG_SHARED):
                die(f"page {gpa:#x}: 2 MiB or shared pages are not measured here")
            if dtype == DATA_SECRETS:
                g.update_secrets_page(gpa)
                count("secrets")
            elif dtype in (DATA_CPUID, DATA_CPUID_XF):
                g.update_cpuid_page(gpa)
                count("cpuid")
            elif flags & FLAG_UNMEASURED:
                g.update_unmeasured_pages(gpa, PAGE)
                count("unmeasured")
            elif file_off == 0:
                # No file data: QEMU and KVM add a NORMAL page of zeros.
                g.update_normal_pages(gpa, bytes(PAGE))
                count("zero")
            else:
                g.update_normal_pages(gpa, blob[file_off:file_off + PAGE])
                count("normal")
        elif typ == PARAMETER_INSERT:
            (index,) = struct.unpack_from("<I", body, 12)
            if index not in areas:
                die(f"parameter insert of undeclared area {index}")
            g.update_unmeasured_pages(gpa, (areas[index] + PAGE - 1) // PAGE * PAGE)
            count("unmeasured")
        else:
            (file_off,) = struct.unpack_from("<I", body, 12)
            if gpa != VMSA_GPA:
                die(f"VMSA at {gpa:#x}")
            g.update_vmsa_page(blob[file_off:file_off + PAGE])
            count("vmsa")
            vmsa_done = True
    for kind in sorted(counts):
        print(f"pages {kind} {counts[kind]}")
    print(f"digest {g.hex_ld()}")


main()
