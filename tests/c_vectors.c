/* Decodes datagrams given as hex arguments with docs/hftfeed_wire.h and prints every field, one
 * line per packet/message, in the format tests/test_c_header.py compares with the Python
 * decoder. Exit 1 for a datagram that breaks PROTOCOL.md's structure. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hftfeed_wire.h"

static size_t unhex(const char *text, uint8_t *out, size_t room) {
    size_t n = strlen(text) / 2;
    if (n > room) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned value;
        if (sscanf(text + 2 * i, "%2x", &value) != 1) return 0;
        out[i] = (uint8_t)value;
    }
    return n;
}

static int decode(const uint8_t *d, size_t size) {
    hf_packet_header ph;
    if (size < HF_HEADER_SIZE) return 1;
    memcpy(&ph, d, sizeof ph);
    if (ph.magic[0] != HF_MAGIC0 || ph.magic[1] != HF_MAGIC1 || ph.version != HF_VERSION) return 1;
    printf("packet flags=%u channel=%u count=%u session=%" PRIu32 " seq=%" PRIu64 " send_ns=%" PRIu64 "\n",
           ph.flags, ph.channel, ph.count, ph.session, ph.seq, ph.send_ns);
    size_t off = HF_HEADER_SIZE;
    for (unsigned i = 0; i < ph.count; i++) {
        hf_msg_header h;
        if (off + HF_MSG_HEADER_SIZE > size) return 1;
        memcpy(&h, d + off, sizeof h);
        if (h.length < HF_MSG_HEADER_SIZE || h.length % 8 || off + h.length > size) return 1;
        printf("msg type=%c venue=%u instrument=%u flags=%u exch_ns=%" PRIu64 " recv_ns=%" PRIu64
               " update_id=%" PRIu64, h.type, h.venue, h.instrument, h.flags, h.exch_ns,
               h.recv_ns, h.update_id);
        if (h.type == HF_TYPE_BOOK) {
            hf_book b;
            memcpy(&b, d + off, sizeof b);
            if (h.length != HF_BOOK_LEN(b.bid_n, b.ask_n)) return 1;
            printf(" bids=");
            for (unsigned k = 0; k < (unsigned)b.bid_n + b.ask_n; k++) {
                hf_level lv;
                memcpy(&lv, d + off + HF_BOOK_FIXED_LEN + k * HF_LEVEL_SIZE, sizeof lv);
                if (k == b.bid_n) printf(" asks=");
                printf("%" PRId64 "@%" PRId64 ";", lv.price, lv.qty);
            }
            if (b.ask_n == 0) printf(" asks=");
        } else if (h.type == HF_TYPE_TRADE) {
            hf_trade t;
            if (h.length < HF_TRADE_LEN) return 1;      /* longer: fields appended */
            memcpy(&t, d + off, sizeof t);
            printf(" price=%" PRId64 " qty=%" PRId64 " side=%u", t.price, t.qty, t.side);
        } else if (h.type == HF_TYPE_QUOTE) {
            hf_quote q;
            if (h.length < HF_QUOTE_LEN) return 1;
            memcpy(&q, d + off, sizeof q);
            printf(" bid_px=%" PRId64 " bid_qty=%" PRId64 " ask_px=%" PRId64 " ask_qty=%" PRId64,
                   q.bid_px, q.bid_qty, q.ask_px, q.ask_qty);
        } else if (h.type == HF_TYPE_STATUS) {
            hf_status s;
            if (h.length < HF_STATUS_LEN) return 1;
            memcpy(&s, d + off, sizeof s);
            printf(" state=%u", s.state);
        } else if (h.type == HF_TYPE_INSTRUMENT) {
            hf_instrument in;
            char symbol[HF_SYMBOL_SIZE + 1];
            if (h.length < HF_INSTRUMENT_LEN) return 1;
            memcpy(&in, d + off, sizeof in);
            memcpy(symbol, in.symbol, HF_SYMBOL_SIZE);
            symbol[HF_SYMBOL_SIZE] = 0;
            printf(" symbol=%s price_exp=%d qty_exp=%d", symbol, in.price_exp, in.qty_exp);
        } else if (h.type == HF_TYPE_DETAILS) {
            hf_details dt;
            if (h.length < HF_DETAILS_LEN) return 1;
            memcpy(&dt, d + off, sizeof dt);
            printf(" tick_size=%" PRId64 " lot_size=%" PRId64 " min_qty=%" PRId64
                   " contract_size=%" PRId64 " trading=%u", dt.tick_size, dt.lot_size,
                   dt.min_qty, dt.contract_size, dt.trading);
        }
        printf("\n");
        off += h.length;
    }
    return off == size ? 0 : 1;
}

int main(int argc, char **argv) {
    static uint8_t buf[65536];
    for (int i = 1; i < argc; i++) {
        size_t n = unhex(argv[i], buf, sizeof buf);
        if (decode(buf, n)) {
            printf("error\n");
            return 1;
        }
    }
    return 0;
}
