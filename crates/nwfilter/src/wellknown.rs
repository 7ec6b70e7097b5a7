//! The filters users reference by name, defined at a driver's first start (as libvirt's
//! packages install theirs). Written for Vireo from libvirt's documented behaviour of each
//! name; they may be redefined like any filter.

/// (name, XML) of every well-known filter, referenced ones first.
pub const FILTERS: &[(&str, &str)] = &[
    (
        "no-mac-spoofing",
        // Frames from the guest carry its own MAC address, or are dropped.
        "<filter name='no-mac-spoofing' chain='mac' priority='-800'>\
           <rule action='return' direction='out' priority='500'><mac srcmacaddr='$MAC'/></rule>\
           <rule action='drop' direction='out' priority='500'><mac/></rule>\
         </filter>",
    ),
    (
        "allow-dhcp",
        // DHCP requests out, answers in (any server).
        "<filter name='allow-dhcp' chain='ipv4' priority='-700'>\
           <rule action='accept' direction='out' priority='100'>\
             <udp srcipaddr='0.0.0.0' dstipaddr='255.255.255.255' srcportstart='68' dstportstart='67'/></rule>\
           <rule action='accept' direction='in' priority='100'>\
             <udp srcportstart='67' dstportstart='68'/></rule>\
         </filter>",
    ),
    (
        "no-ip-spoofing",
        // IPv4 from the guest carries one of its addresses ($IP); DHCP discovery from
        // 0.0.0.0 is let through.
        "<filter name='no-ip-spoofing' chain='ipv4-ip' priority='-710'>\
           <rule action='return' direction='out' priority='100'>\
             <udp srcipaddr='0.0.0.0' dstipaddr='255.255.255.255' srcportstart='68' dstportstart='67'/></rule>\
           <rule action='return' direction='out' priority='500'><ip srcipaddr='$IP'/></rule>\
           <rule action='drop' direction='out' priority='1000'><ip/></rule>\
         </filter>",
    ),
    (
        "no-arp-mac-spoofing",
        "<filter name='no-arp-mac-spoofing' chain='arp-mac' priority='-520'>\
           <rule action='return' direction='out' priority='350'><arp arpsrcmacaddr='$MAC'/></rule>\
           <rule action='drop' direction='out' priority='1000'><arp/></rule>\
         </filter>",
    ),
    (
        "no-arp-ip-spoofing",
        "<filter name='no-arp-ip-spoofing' chain='arp-ip' priority='-510'>\
           <rule action='return' direction='out' priority='400'><arp arpsrcipaddr='$IP'/></rule>\
           <rule action='drop' direction='out' priority='1000'><arp/></rule>\
         </filter>",
    ),
    (
        "no-arp-spoofing",
        "<filter name='no-arp-spoofing' chain='root'>\
           <filterref filter='no-arp-mac-spoofing'/>\
           <filterref filter='no-arp-ip-spoofing'/>\
         </filter>",
    ),
    (
        "allow-arp",
        "<filter name='allow-arp' chain='arp' priority='-500'>\
           <rule action='accept' direction='inout' priority='500'/>\
         </filter>",
    ),
    (
        "allow-incoming-ipv4",
        "<filter name='allow-incoming-ipv4' chain='ipv4' priority='-700'>\
           <rule action='accept' direction='in' priority='500'/>\
         </filter>",
    ),
    (
        "allow-ipv4",
        "<filter name='allow-ipv4' chain='ipv4' priority='-700'>\
           <rule action='accept' direction='inout' priority='500'/>\
         </filter>",
    ),
    (
        "no-other-l2-traffic",
        // Only IPv4 and ARP (handled by the filters before it) pass; the rest is dropped.
        "<filter name='no-other-l2-traffic' chain='root'>\
           <rule action='drop' direction='inout' priority='1000'/>\
         </filter>",
    ),
    (
        "qemu-announce-self-rarp",
        "<filter name='qemu-announce-self-rarp' chain='rarp' priority='-400'>\
           <rule action='accept' direction='out' priority='500'>\
             <rarp srcmacaddr='$MAC' dstmacaddr='ff:ff:ff:ff:ff:ff' opcode='Request_Reverse'/></rule>\
           <rule action='drop' direction='inout' priority='1000'/>\
         </filter>",
    ),
    (
        "qemu-announce-self",
        "<filter name='qemu-announce-self' chain='root'>\
           <filterref filter='qemu-announce-self-rarp'/>\
         </filter>",
    ),
    (
        "clean-traffic",
        // No MAC, IP or ARP spoofing; incoming IPv4 allowed; no other layer-2 protocol.
        "<filter name='clean-traffic' chain='root'>\
           <filterref filter='no-mac-spoofing'/>\
           <filterref filter='no-ip-spoofing'/>\
           <rule action='accept' direction='out' priority='-650'><mac protocolid='ipv4'/></rule>\
           <filterref filter='allow-incoming-ipv4'/>\
           <filterref filter='no-arp-spoofing'/>\
           <rule action='accept' direction='inout' priority='-500'><mac protocolid='arp'/></rule>\
           <filterref filter='no-other-l2-traffic'/>\
           <filterref filter='qemu-announce-self'/>\
         </filter>",
    ),
];
