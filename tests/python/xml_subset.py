#!/usr/bin/python3
"""Checks that every element, attribute and text of XML file A appears in XML file B.

Used to prove that a definition round-trips through the daemon: A is what we defined,
B is what dumpxml gave back (which may add defaults, but must lose nothing).
usage: xml_subset.py A B
"""
import sys
import xml.etree.ElementTree as ET


def covers(a, b, path):
    if a.tag != b.tag:
        return f"{path}: element <{a.tag}> came back as <{b.tag}>"
    for k, v in a.attrib.items():
        if b.attrib.get(k) != v:
            return f"{path}/@{k}: defined {v!r}, got {b.attrib.get(k)!r}"
    if len(a) == 0 and (a.text or "").strip() != (b.text or "").strip():
        return f"{path}: defined text {a.text!r}, got {b.text!r}"
    used = set()
    for i, ca in enumerate(a):
        err = f"{path}/{ca.tag}[{i}]: missing"
        for j, cb in enumerate(b):
            if j in used or cb.tag != ca.tag:
                continue
            err = covers(ca, cb, f"{path}/{ca.tag}")
            if err is None:
                used.add(j)
                break
        if err is not None:
            return err
    return None


def main():
    a = ET.parse(sys.argv[1]).getroot()
    b = ET.parse(sys.argv[2]).getroot()
    err = covers(a, b, "")
    if err:
        print(err, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
