/*
 * hftfeed wire format, version 1: packed little-endian structs and constants for C/C++
 * consumers. docs/PROTOCOL.md is the normative spec; this header restates its tables as C
 * types and is checked against the spec's test vectors (tests/test_c_header.py compiles a
 * program with it and decodes every vector).
 *
 * All integers on the wire are little-endian. The structs are packed and meant to be read
 * with memcpy from a received datagram (never cast an unaligned pointer). On a big-endian
 * host, convert each field with le16toh/le32toh/le64toh after the copy.
 *
 * Prices and quantities are fixed-point: value x 10^exp, exp from the instrument's I message
 * (-8 today).
 *
 * Compatibility (PROTOCOL.md): skip a message whose type you do not know by its length; a known
 * fixed-size message may be LONGER than its HF_*_LEN (fields appended within version 1): read
 * the fields below and skip the rest; shorter is malformed.
 */
#ifndef HFTFEED_WIRE_H
#define HFTFEED_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define HF_MAGIC0 0x48                       /* 'H' */
#define HF_MAGIC1 0x46                       /* 'F' */
#define HF_VERSION 1
#define HF_HEADER_SIZE 32
#define HF_MSG_HEADER_SIZE 32
#define HF_PACKET_FLAG_END_OF_SESSION 0x01

#define HF_TYPE_BOOK 'B'
#define HF_TYPE_TRADE 'T'
#define HF_TYPE_QUOTE 'Q'
#define HF_TYPE_STATUS 'S'
#define HF_TYPE_INSTRUMENT 'I'
#define HF_TYPE_DETAILS 'D'                   /* instrument details: tick, lot, ... */

#define HF_BOOK_FLAG_SNAPSHOT 0x0001          /* first book after a (re)synchronisation */
#define HF_BOOK_FLAG_REFRESH 0x0002           /* re-sent by the refresh cycle */

#define HF_STATE_LIVE 1
#define HF_STATE_RESYNC 2
#define HF_STATE_DISCONNECTED 3

#define HF_TRADING_UNKNOWN 0                  /* D: the venue's list states none */
#define HF_TRADING_OPEN 1
#define HF_TRADING_RESTRICTED 2               /* halted, pre-open, cancel/post/limit only */
#define HF_TRADING_CLOSED 3                   /* delisted, expired, settled */

#define HF_SIDE_UNKNOWN 0
#define HF_SIDE_BUYER 1
#define HF_SIDE_SELLER 2

#define HF_BOOK_FIXED_LEN 40
#define HF_LEVEL_SIZE 16
#define HF_TRADE_LEN 56
#define HF_QUOTE_LEN 64
#define HF_STATUS_LEN 40
#define HF_INSTRUMENT_LEN 64
#define HF_DETAILS_LEN 72
#define HF_SYMBOL_SIZE 24
#define HF_BOOK_LEN(bid_n, ask_n) (HF_BOOK_FIXED_LEN + HF_LEVEL_SIZE * ((bid_n) + (ask_n)))

/* Retransmission over TCP (PROTOCOL.md "Retransmission") */
#define HF_RETRANS_MAGIC0 0x48                /* 'H' */
#define HF_RETRANS_MAGIC1 0x52                /* 'R' */
#define HF_RETRANS_OK 0
#define HF_RETRANS_DONE 1
#define HF_RETRANS_NOT_HELD 2
#define HF_RETRANS_BAD_REQUEST 3
#define HF_RETRANS_UNKNOWN_SESSION 4
#define HF_RETRANS_LIMIT 5

#if defined(_MSC_VER)
#pragma pack(push, 1)
#define HF_PACKED
#else
#define HF_PACKED __attribute__((packed))
#endif

typedef struct HF_PACKED hf_packet_header {
    uint8_t magic[2];          /* "HF" */
    uint8_t version;           /* 1 */
    uint8_t flags;             /* bit 0: end of session */
    uint16_t channel;
    uint16_t count;            /* messages in this packet; 0 = heartbeat */
    uint32_t session;
    uint32_t reserved;
    uint64_t seq;              /* seq of the first message; counts messages */
    uint64_t send_ns;
} hf_packet_header;

typedef struct HF_PACKED hf_msg_header {
    uint16_t length;           /* whole message, header included, multiple of 8 */
    uint8_t type;              /* HF_TYPE_* */
    uint8_t venue;
    uint16_t instrument;       /* unique within a channel */
    uint16_t flags;
    uint64_t exch_ns;
    uint64_t recv_ns;
    uint64_t update_id;        /* book/quote: venue update id; trade: trade id */
} hf_msg_header;

typedef struct HF_PACKED hf_level {
    int64_t price;
    int64_t qty;
} hf_level;

typedef struct HF_PACKED hf_book {
    hf_msg_header h;
    uint8_t bid_n;
    uint8_t ask_n;
    uint8_t reserved[6];
    /* then bid_n + ask_n hf_level: bids best first, then asks best first */
} hf_book;

typedef struct HF_PACKED hf_trade {
    hf_msg_header h;
    int64_t price;
    int64_t qty;
    uint8_t side;              /* HF_SIDE_* */
    uint8_t reserved[7];
} hf_trade;

typedef struct HF_PACKED hf_quote {
    hf_msg_header h;
    int64_t bid_px;
    int64_t bid_qty;
    int64_t ask_px;
    int64_t ask_qty;
} hf_quote;

typedef struct HF_PACKED hf_status {
    hf_msg_header h;
    uint8_t state;             /* HF_STATE_* */
    uint8_t reserved[7];
} hf_status;

typedef struct HF_PACKED hf_instrument {
    hf_msg_header h;
    char symbol[HF_SYMBOL_SIZE];   /* ASCII, NUL-padded, not NUL-terminated when 24 long */
    int8_t price_exp;
    int8_t qty_exp;
    uint8_t reserved[6];
} hf_instrument;

typedef struct HF_PACKED hf_details {
    hf_msg_header h;           /* recv_ns: when the daemon read the venue's instrument list */
    int64_t tick_size;         /* price increment, price exponent (> 0) */
    int64_t lot_size;          /* quantity increment, quantity exponent (> 0) */
    int64_t min_qty;           /* minimum order quantity, quantity exponent; 0 = not stated */
    int64_t contract_size;     /* contract size/multiplier x 10^8 in the venue's unit; 0 = none */
    uint8_t trading;           /* HF_TRADING_* */
    uint8_t reserved[7];
} hf_details;

typedef struct HF_PACKED hf_retrans_request {
    uint8_t magic[2];          /* "HR" */
    uint8_t version;           /* 1 */
    uint8_t reserved0;
    uint16_t channel;
    uint16_t reserved1;
    uint32_t session;
    uint32_t reserved2;
    uint64_t first_seq;
    uint32_t count;
    uint32_t reserved3;
} hf_retrans_request;

typedef struct HF_PACKED hf_retrans_frame {
    uint8_t magic[2];          /* "HR" */
    uint8_t code;              /* HF_RETRANS_* */
    uint8_t reserved0;
    uint16_t length;           /* bytes of datagram that follow (code HF_RETRANS_OK) */
    uint16_t reserved1;
} hf_retrans_frame;

#if defined(_MSC_VER)
#pragma pack(pop)
#endif

/* Sizes are part of the format: fail the build if a compiler lays them out differently. */
typedef char hf_check_packet_header[sizeof(hf_packet_header) == HF_HEADER_SIZE ? 1 : -1];
typedef char hf_check_msg_header[sizeof(hf_msg_header) == HF_MSG_HEADER_SIZE ? 1 : -1];
typedef char hf_check_book[sizeof(hf_book) == HF_BOOK_FIXED_LEN ? 1 : -1];
typedef char hf_check_trade[sizeof(hf_trade) == HF_TRADE_LEN ? 1 : -1];
typedef char hf_check_quote[sizeof(hf_quote) == HF_QUOTE_LEN ? 1 : -1];
typedef char hf_check_status[sizeof(hf_status) == HF_STATUS_LEN ? 1 : -1];
typedef char hf_check_instrument[sizeof(hf_instrument) == HF_INSTRUMENT_LEN ? 1 : -1];
typedef char hf_check_details[sizeof(hf_details) == HF_DETAILS_LEN ? 1 : -1];
typedef char hf_check_request[sizeof(hf_retrans_request) == 32 ? 1 : -1];
typedef char hf_check_frame[sizeof(hf_retrans_frame) == 8 ? 1 : -1];

#endif /* HFTFEED_WIRE_H */
