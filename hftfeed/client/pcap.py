"""Classic pcap files of UDP datagrams: write (recorder) and read (replay, export, client).

Why pcap: tcpdump, Wireshark and tshark open it, and a capture taken with tcpdump on a real
network replays through the same reader. Files are written with the nanosecond magic
(``0xa1b23c4d``) so capture times are exact to the ns, link type RAW (101: each record starts
at the IP header), with a real IPv4 or IPv6 + UDP header in front of the datagram (IPv4 header
checksum computed; the UDP checksum is computed for IPv6, where it is mandatory, and left 0 for
IPv4, where 0 means "none"). The reader also takes microsecond files and the Ethernet, Linux
cooked (v1, v2) and BSD loopback link types, skips anything that is not UDP, and raises
:class:`PcapError` for a file that is not pcap or is cut inside a header (a record cut short at
the end, as a killed writer leaves it, ends the iteration with ``truncated`` set).
"""

import ipaddress
import struct

from hftfeed.errors import HftfeedError

MAGIC_NS = 0xA1B23C4D
MAGIC_US = 0xA1B2C3D4
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
SNAPLEN = 65535
MAX_RECORD_BYTES = 262144

_GLOBAL = struct.Struct("<IHHiIII")      # magic, major, minor, thiszone, sigfigs, snaplen, link
_RECORD = struct.Struct("<IIII")         # ts_sec, ts_frac, incl_len, orig_len
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")
_IPPROTO_UDP = 17


class PcapError(HftfeedError):
    """Not a pcap file, or one cut inside its global header."""


def _checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_udp_frame(src, dst, payload):
    """An IP + UDP packet carrying ``payload`` from ``src`` (host, port) to ``dst``."""
    src_ip = ipaddress.ip_address(src[0])
    dst_ip = ipaddress.ip_address(dst[0])
    udp_len = 8 + len(payload)
    if src_ip.version != dst_ip.version:
        src_ip = ipaddress.ip_address("::" if dst_ip.version == 6 else "0.0.0.0")
    if dst_ip.version == 4:
        header = bytearray(_IPV4.pack(0x45, 0, 20 + udp_len, 0, 0x4000, 64, _IPPROTO_UDP, 0,
                                      src_ip.packed, dst_ip.packed))
        struct.pack_into("!H", header, 10, _checksum(bytes(header)))
        return bytes(header) + _UDP.pack(src[1], dst[1], udp_len, 0) + payload
    pseudo = src_ip.packed + dst_ip.packed + struct.pack("!IxxxB", udp_len, _IPPROTO_UDP)
    udp_header = _UDP.pack(src[1], dst[1], udp_len, 0)
    csum = _checksum(pseudo + udp_header + payload) or 0xFFFF
    return (_IPV6.pack(6 << 28, udp_len, _IPPROTO_UDP, 64, src_ip.packed, dst_ip.packed)
            + _UDP.pack(src[1], dst[1], udp_len, csum) + payload)


class PcapWriter(object):
    """Append UDP datagrams to a pcap file (nanosecond timestamps, link type RAW)."""

    def __init__(self, path):
        self.path = path
        self._file = open(path, "wb")
        self._file.write(_GLOBAL.pack(MAGIC_NS, 2, 4, 0, 0, SNAPLEN, LINKTYPE_RAW))
        self.bytes_written = _GLOBAL.size
        self.records = 0

    def write(self, ts_ns, src, dst, payload):
        frame = ip_udp_frame(src, dst, bytes(payload))
        self._file.write(_RECORD.pack(ts_ns // 1000000000, ts_ns % 1000000000, len(frame),
                                      len(frame)))
        self._file.write(frame)
        self.bytes_written += _RECORD.size + len(frame)
        self.records += 1

    def flush(self):
        self._file.flush()

    def close(self):
        if not self._file.closed:
            self._file.close()


class PcapReader(object):
    """Iterate ``(ts_ns, (src_host, src_port), (dst_host, dst_port), payload)`` of every UDP
    datagram in a pcap file."""

    def __init__(self, path_or_file):
        if hasattr(path_or_file, "read"):
            self._file = path_or_file
            self._owned = False
        else:
            self._file = open(path_or_file, "rb")
            self._owned = True
        head = self._file.read(_GLOBAL.size)
        if len(head) < _GLOBAL.size:
            self.close()
            raise PcapError("not a pcap file: %d bytes, shorter than the 24-byte header"
                            % len(head))
        magic = struct.unpack("<I", head[:4])[0]
        if magic in (MAGIC_NS, MAGIC_US):
            self._endian = "<"
        elif struct.unpack(">I", head[:4])[0] in (MAGIC_NS, MAGIC_US):
            self._endian = ">"
            magic = struct.unpack(">I", head[:4])[0]
        else:
            self.close()
            raise PcapError("not a pcap file (magic 0x%08x); pcapng is not read: convert it "
                            "with 'editcap -F pcap IN OUT'" % magic)
        self._frac_ns = 1 if magic == MAGIC_NS else 1000
        fields = struct.unpack(self._endian + "IHHiIII", head)
        self.linktype = fields[6] & 0xFFFF
        if self.linktype not in (LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW,
                                 LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2):
            self.close()
            raise PcapError("pcap link type %d is not read (Ethernet, RAW, Linux cooked and "
                            "loopback are)" % self.linktype)
        self._record = struct.Struct(self._endian + "IIII")
        self.truncated = False
        self.skipped = 0

    def __iter__(self):
        read = self._file.read
        record = self._record
        while True:
            head = read(16)
            if not head:
                return
            if len(head) < 16:
                self.truncated = True
                return
            sec, frac, incl, _orig = record.unpack(head)
            if incl > MAX_RECORD_BYTES:
                raise PcapError("record of %d bytes: the file is corrupt" % incl)
            frame = read(incl)
            if len(frame) < incl:
                self.truncated = True
                return
            parsed = self._udp(frame)
            if parsed is None:
                self.skipped += 1
                continue
            src, dst, payload = parsed
            yield sec * 1000000000 + frac * self._frac_ns, src, dst, payload

    def _udp(self, frame):
        off = 0
        link = self.linktype
        if link == LINKTYPE_ETHERNET:
            if len(frame) < 14:
                return None
            ethertype = struct.unpack_from("!H", frame, 12)[0]
            off = 14
            while ethertype in (0x8100, 0x88A8) and len(frame) >= off + 4:   # VLAN tags
                ethertype = struct.unpack_from("!H", frame, off + 2)[0]
                off += 4
            if ethertype not in (0x0800, 0x86DD):
                return None
        elif link == LINKTYPE_LINUX_SLL:
            off = 16
        elif link == LINKTYPE_LINUX_SLL2:
            off = 20
        elif link == LINKTYPE_NULL:
            off = 4
        if len(frame) < off + 1:
            return None
        version = frame[off] >> 4
        if version == 4:
            if len(frame) < off + 20:
                return None
            ihl = (frame[off] & 0x0F) * 4
            if frame[off + 9] != _IPPROTO_UDP or ihl < 20:
                return None
            frag = struct.unpack_from("!H", frame, off + 6)[0]
            if frag & 0x3FFF:          # a fragment: not reassembled
                return None
            src_host = str(ipaddress.IPv4Address(frame[off + 12:off + 16]))
            dst_host = str(ipaddress.IPv4Address(frame[off + 16:off + 20]))
            off += ihl
        elif version == 6:
            if len(frame) < off + 40 or frame[off + 6] != _IPPROTO_UDP:
                return None
            src_host = str(ipaddress.IPv6Address(frame[off + 8:off + 24]))
            dst_host = str(ipaddress.IPv6Address(frame[off + 24:off + 40]))
            off += 40
        else:
            return None
        if len(frame) < off + 8:
            return None
        sport, dport, udp_len, _csum = _UDP.unpack_from(frame, off)
        if udp_len < 8 or off + udp_len > len(frame):
            return None
        return (src_host, sport), (dst_host, dport), frame[off + 8:off + udp_len]

    def close(self):
        if self._owned and not self._file.closed:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
