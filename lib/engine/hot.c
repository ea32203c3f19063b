/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-worker hot answers (hot.h): the plain-query parser that keys them, the
 * ring and index that keep them, and the replay that patches a kept answer for the
 * query at hand. Worker thread; no allocation after tern_hot_new().
 */
#include "lib/engine/hot.h"

#include <stdlib.h>
#include <string.h>

#include "lib/engine/process.h"

#define HOT_WAYS        4
#define HOT_ENTRY_BYTES 160        /* ring bytes per entry asked for (cluster answers: ~150) */
#define HOT_MAX_BODY    4096       /* larger answers are not kept */
#define HOT_OPT_LEN     11         /* our OPT record: root, type, class, TTL, RDLEN 0 */
#define HOT_KEY_TC      0x80       /* key flag: the truncated form of the answer */

/* One index slot: where an answer starts in the ring (absolute byte position + 1). */
struct hot_slot {
	uint32_t tag;              /* high bits of the hash */
	uint64_t pos;              /* 0: empty */
};

/* struct hot_entry's opts. */
#define HOT_LIMITED 0x01           /* data[] has until_ms and ttl_base_ms */
#define HOT_BY_VIEW 0x02           /* allowed with limits: valid for its view, not one epoch */
#define HOT_SCOPED  0x04           /* data[] has a struct hot_scoped: valid while its part is */

/* The part of scoped data (req.h: struct tern_hot_scope) an answer was read from. */
struct hot_scoped {
	const struct tern_hot_scope *scope;
	uint64_t id;
	uint64_t seen;             /* the whole data last found right (tern_hot_scope) */
	uint32_t part;
	uint16_t serial_off;       /* the SOA serial in the answer message; 0: none */
	uint16_t pad;
};

/*
 * A kept answer in the ring. data[] holds, in order: when HOT_LIMITED, until_ms and
 * ttl_base_ms (u64 each); when HOT_SCOPED, a struct hot_scoped; ncounters counter
 * pointers; the name; the body (the answer after the question, without OPT);
 * nttl x (u16 offset, u32 ttl).
 */
struct hot_entry {
	uint64_t epoch;            /* publish epoch, or view generation when HOT_BY_VIEW */
	struct tern_stats_loc stats;
	uint16_t qtype;
	uint16_t name_len;
	uint16_t body_len;
	uint16_t ancount, nscount, arcount;   /* arcount without OPT */
	uint16_t nttl;
	uint16_t tc_limit;         /* truncated form: for clients taking at most this */
	uint8_t listen;
	uint8_t flags;
	uint8_t hdr2, hdr3;        /* header bytes 2 and 3 of the answer */
	uint8_t ncounters;
	uint8_t opts;              /* HOT_LIMITED | HOT_BY_VIEW | HOT_SCOPED */
	uint8_t name_off;          /* where the name starts in data[] */
	uint8_t pad;
	uint8_t data[];
};
_Static_assert(sizeof(struct hot_entry) == 40, "the entry header stays compact");

static inline const uint8_t *entry_name(const struct hot_entry *e)
{
	return e->data + e->name_off;
}

static inline uint64_t entry_u64(const struct hot_entry *e, size_t i)
{
	uint64_t v;
	memcpy(&v, e->data + i * 8, sizeof(v));
	return v;
}

static inline size_t scoped_off(const struct hot_entry *e)
{
	return e->opts & HOT_LIMITED ? 16 : 0;
}

static inline size_t counters_off(const struct hot_entry *e)
{
	return scoped_off(e) + (e->opts & HOT_SCOPED ? sizeof(struct hot_scoped) : 0);
}

struct tern_hot {
	uint8_t *ring;
	uint64_t ring_size;
	uint64_t head;             /* absolute write position */
	struct hot_slot *slots;    /* nsets x HOT_WAYS */
	uint64_t set_mask;
};

struct tern_hot *tern_hot_new(unsigned entries)
{
	if (entries == 0 || entries > TERN_HOT_MAX_ENTRIES)
		return NULL;
	struct tern_hot *hot = calloc(1, sizeof(*hot));
	if (!hot)
		return NULL;
	uint64_t sets = 1;
	while (sets * HOT_WAYS < 2ull * entries)
		sets <<= 1;
	hot->set_mask = sets - 1;
	hot->ring_size = (uint64_t)entries * HOT_ENTRY_BYTES;
	if (hot->ring_size < 4 * (sizeof(struct hot_entry) + KNOT_DNAME_MAXLEN + HOT_MAX_BODY))
		hot->ring_size = 4 * (sizeof(struct hot_entry) + KNOT_DNAME_MAXLEN + HOT_MAX_BODY);
	hot->ring = malloc(hot->ring_size);
	hot->slots = calloc(sets * HOT_WAYS, sizeof(*hot->slots));
	if (!hot->ring || !hot->slots) {
		tern_hot_free(hot);
		return NULL;
	}
	/* Touch every page now: no page fault (or huge-page zeroing) while answering. */
	memset(hot->ring, 0, hot->ring_size);
	memset(hot->slots, 0, (sets * HOT_WAYS) * sizeof(*hot->slots));
	return hot;
}

void tern_hot_free(struct tern_hot *hot)
{
	if (!hot)
		return;
	free(hot->ring);
	free(hot->slots);
	free(hot);
}

/* ---- the plain-query parser --------------------------------------------------- */

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t load32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/*
 * Lowercase A-Z in 8 bytes at once (label length bytes are < 64: never letters).
 * Bytes >= 0x80 are left alone, as knot_dname_to_lower does.
 */
static inline uint64_t lower8(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	uint64_t seven = x & ~high;
	uint64_t ge_a = seven + (0x80 - 'A') * ones;     /* high bit: byte >= 'A' */
	uint64_t gt_z = seven + (0x7f - 'Z') * ones;     /* high bit: byte > 'Z' */
	uint64_t upper = ge_a & ~gt_z & ~x & high;
	return x | (upper >> 2);
}

static inline uint64_t mix(uint64_t h, uint64_t v)
{
	h = (h ^ v) * 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 29);
}

static inline uint64_t key_hash(const struct tern_hot_key *key, uint8_t flags)
{
	return mix(key->name_hash,
	           (uint64_t)key->qtype << 16 | (uint64_t)flags << 8 | key->listen);
}

/* The OPT record's options must be well-formed, as libknot checks them. */
static bool opt_options_ok(const uint8_t *p, size_t len)
{
	while (len > 0) {
		if (len < 4)
			return false;
		size_t olen = knot_wire_read_u16(p + 2);
		if (olen > len - 4)
			return false;
		p += 4 + olen;
		len -= 4 + olen;
	}
	return true;
}

/* Fill @p key from a plain query, or leave key->name_len 0. */
static void parse_plain(const uint8_t *in, size_t in_len, bool tcp, struct tern_hot_key *key)
{
	key->name_len = 0;
	if (in_len < KNOT_WIRE_HEADER_SIZE + 5 || (in[2] & 0xf8) != 0 || (in[3] & 0x40) ||
	    knot_wire_get_qdcount(in) != 1 || knot_wire_get_ancount(in) != 0 ||
	    knot_wire_get_nscount(in) != 0 || knot_wire_get_arcount(in) > 1)
		return;   /* QR, opcode or Z set, or not one bare question */
	size_t pos = KNOT_WIRE_HEADER_SIZE;
	while (in[pos] != 0) {
		if (in[pos] > KNOT_DNAME_MAXLABELLEN)
			return;   /* compression or extended labels: not in a question */
		pos += in[pos] + 1u;
		if (pos >= in_len || pos - KNOT_WIRE_HEADER_SIZE >= KNOT_DNAME_MAXLEN)
			return;
	}
	size_t name_len = pos + 1 - KNOT_WIRE_HEADER_SIZE;
	size_t end = pos + 5;
	if (end > in_len || knot_wire_read_u16(in + pos + 3) != KNOT_CLASS_IN)
		return;
	uint16_t limit = tcp ? UINT16_MAX : TERN_UDP_MIN_PAYLOAD;
	bool edns = knot_wire_get_arcount(in) == 1, dnssec_ok = false;
	if (edns) {
		const uint8_t *o = in + end;
		if (end + HOT_OPT_LEN > in_len || o[0] != 0 ||
		    knot_wire_read_u16(o + 1) != KNOT_RRTYPE_OPT || o[6] != 0)
			return;   /* not an OPT of version 0 (the chain answers BADVERS) */
		size_t rdlen = knot_wire_read_u16(o + 9);
		if (end + HOT_OPT_LEN + rdlen != in_len || !opt_options_ok(o + HOT_OPT_LEN, rdlen))
			return;
		dnssec_ok = o[7] & 0x80;
		if (!tcp) {
			uint16_t want = knot_wire_read_u16(o + 3);
			limit = want < TERN_UDP_MIN_PAYLOAD ? TERN_UDP_MIN_PAYLOAD :
			        want > TERN_UDP_MAX_PAYLOAD ? TERN_UDP_MAX_PAYLOAD : want;
		}
	} else if (end != in_len) {
		return;   /* trailing bytes: FORMERR from the chain */
	}

	/*
	 * Lowercase and hash 8 bytes at a time, straight from the packet. The last partial
	 * word may read into the type and class that follow the name (4 bytes, in the
	 * packet) and is masked to the name's bytes.
	 */
	const uint8_t *src = in + KNOT_WIRE_HEADER_SIZE;
	size_t full = name_len / 8, rem = name_len % 8;
	uint64_t h = 0x243f6a8885a308d3ull;
	for (size_t i = 0; i < full; i++) {
		uint64_t w = lower8(load64(src + i * 8));
		memcpy(key->name + i * 8, &w, sizeof(w));
		h = mix(h, w);
	}
	if (rem) {
		const uint8_t *p = src + full * 8;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		uint64_t w = rem >= 4 ? load64(p) : load32(p);
		w = lower8(w & ((1ull << (8 * rem)) - 1));
#else
		uint64_t w = 0;
		memcpy(&w, p, rem);
		w = lower8(w);
#endif
		memcpy(key->name + full * 8, &w, sizeof(w));
		h = mix(h, w);
	}
	key->qtype = knot_wire_read_u16(in + pos + 1);
	key->flags = (dnssec_ok ? TERN_HOT_KEY_DO : 0) | (knot_wire_get_cd(in) ? TERN_HOT_KEY_CD : 0);
	key->name_hash = h;
	key->hash = key_hash(key, key->flags);
	key->edns = edns;
	key->limit = limit;
	key->qsec_len = (uint16_t)(name_len + 4);
	key->name_len = (uint16_t)name_len;
}

/* ---- the table ------------------------------------------------------------------ */

static inline struct hot_slot *set_of(struct tern_hot *hot, uint64_t hash)
{
	return &hot->slots[(hash & hot->set_mask) * HOT_WAYS];
}

static inline uint32_t tag_of(uint64_t hash)
{
	return (uint32_t)(hash >> 32);
}

/* The entry of @p s when it is still whole in the ring (not overwritten since). */
static inline struct hot_entry *slot_entry(const struct tern_hot *hot, const struct hot_slot *s)
{
	uint64_t start = s->pos - 1;
	if (s->pos == 0 || hot->head - start > hot->ring_size)
		return NULL;
	return (struct hot_entry *)(hot->ring + start % hot->ring_size);
}

static inline bool entry_matches(const struct hot_entry *e, const struct tern_hot_key *key,
                                 uint8_t flags)
{
	return e->qtype == key->qtype && e->name_len == key->name_len &&
	       e->listen == key->listen && e->flags == flags &&
	       memcmp(entry_name(e), key->name, key->name_len) == 0;
}

/* The entry for @p key with key flags @p flags (hashing to @p hash), and its slot. */
static struct hot_entry *lookup(struct tern_hot *hot, const struct tern_hot_key *key,
                                uint8_t flags, uint64_t hash, struct hot_slot **slot)
{
	struct hot_slot *set = set_of(hot, hash);
	uint32_t tag = tag_of(hash);
	for (unsigned i = 0; i < HOT_WAYS; i++) {
		if (set[i].tag != tag)
			continue;
		struct hot_entry *e = slot_entry(hot, &set[i]);
		if (e && entry_matches(e, key, flags)) {
			*slot = &set[i];
			return e;
		}
	}
	return NULL;
}

/* The SOA serial a replay writes: its scope's of now, at off (0: none). */
struct hot_serial {
	uint32_t value;
	uint16_t off;
};

/* Whether @p e may be replayed now; *serial: where and what to patch. */
static inline bool entry_valid(struct hot_entry *e, const struct tern_hot_key *key,
                               uint64_t now_ms, struct hot_serial *serial)
{
	serial->off = 0;
	if (e->epoch != (e->opts & HOT_BY_VIEW ? key->view_gen : key->epoch) ||
	    (e->opts & HOT_LIMITED && now_ms >= entry_u64(e, 0)))
		return false;
	if (!(e->opts & HOT_SCOPED))
		return true;
	/* The epoch is checked first: a new view would have freed the scope's owner. */
	struct hot_scoped s;
	memcpy(&s, e->data + scoped_off(e), sizeof(s));
	uint64_t seen = s.seen;
	if (!s.scope->current(s.scope, s.part, s.id, &seen, &serial->value))
		return false;
	if (seen != s.seen)
		memcpy(e->data + scoped_off(e) + offsetof(struct hot_scoped, seen), &seen,
		       sizeof(seen));
	serial->off = s.serial_off;
	return true;
}

/* A kept entry that may still be replayed now, or NULL (stale ones are retired). */
static struct hot_entry *lookup_valid(struct tern_hot *hot, const struct tern_hot_key *key,
                                      uint8_t flags, uint64_t hash, uint64_t now_ms,
                                      struct hot_serial *serial)
{
	struct hot_slot *slot;
	struct hot_entry *e = lookup(hot, key, flags, hash, &slot);
	if (e && !entry_valid(e, key, now_ms, serial)) {
		slot->pos = 0;   /* retired: data published since, or expired */
		return NULL;
	}
	return e;
}

/* ---- replay --------------------------------------------------------------------- */

static void put_opt(uint8_t *o, bool dnssec_ok)
{
	o[0] = 0;
	knot_wire_write_u16(o + 1, KNOT_RRTYPE_OPT);
	knot_wire_write_u16(o + 3, TERN_UDP_MAX_PAYLOAD);
	o[5] = 0;
	o[6] = 0;
	o[7] = dnssec_ok ? 0x80 : 0;
	o[8] = 0;
	knot_wire_write_u16(o + 9, 0);
}

/*
 * Write @p e for the query @p in: header, the client's question, body, TTLs, the
 * scope's SOA serial @p serial, OPT.
 */
static size_t replay(const struct hot_entry *e, const struct tern_hot_key *key,
                     const uint8_t *in, uint64_t now_ms, struct hot_serial serial,
                     uint8_t *out)
{
	size_t opt = key->edns ? HOT_OPT_LEN : 0;
	memcpy(out, in, 2);                                        /* ID */
	out[2] = (uint8_t)((e->hdr2 & ~0x01) | (in[2] & 0x01));   /* RD from the query */
	out[3] = (uint8_t)((e->hdr3 & ~0x10) | (in[3] & 0x10));   /* CD from the query */
	knot_wire_set_qdcount(out, 1);
	knot_wire_set_ancount(out, e->ancount);
	knot_wire_set_nscount(out, e->nscount);
	knot_wire_set_arcount(out, (uint16_t)(e->arcount + (opt ? 1 : 0)));
	memcpy(out + KNOT_WIRE_HEADER_SIZE, in + KNOT_WIRE_HEADER_SIZE, key->qsec_len);
	uint8_t *body = out + KNOT_WIRE_HEADER_SIZE + key->qsec_len;
	const uint8_t *name = entry_name(e);
	memcpy(body, name + e->name_len, e->body_len);
	if (e->nttl) {
		const uint8_t *t = name + e->name_len + e->body_len;
		uint32_t age = (uint32_t)((now_ms - entry_u64(e, 1)) / 1000u);
		for (uint16_t i = 0; i < e->nttl; i++, t += 6) {
			uint32_t ttl = knot_wire_read_u32(t + 2);
			knot_wire_write_u32(out + knot_wire_read_u16(t), ttl > age ? ttl - age : 0);
		}
	}
	if (serial.off)
		knot_wire_write_u32(out + serial.off, serial.value);
	if (opt)
		put_opt(body + e->body_len, key->flags & TERN_HOT_KEY_DO);
	for (uint8_t i = 0; i < e->ncounters; i++) {
		_Atomic uint64_t *c;
		memcpy(&c, e->data + counters_off(e) + i * sizeof(c), sizeof(c));
		__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
	}
	return KNOT_WIRE_HEADER_SIZE + key->qsec_len + e->body_len + opt;
}

struct tern_hot_hit tern_hot_serve(struct tern_hot *hot, uint64_t epoch, uint64_t view_gen,
                                   unsigned listen_index, bool tcp, uint64_t now_ms, const uint8_t *in,
                                   size_t in_len, uint8_t *out, size_t out_cap,
                                   struct tern_hot_key *key)
{
	struct tern_hot_hit hit = { .len = 0 };
	key->epoch = epoch;
	key->view_gen = view_gen;
	key->listen = (uint8_t)listen_index;
	parse_plain(in, in_len, tcp, key);
	if (key->name_len == 0)
		return hit;
	size_t opt = key->edns ? HOT_OPT_LEN : 0;
	size_t head = KNOT_WIRE_HEADER_SIZE + key->qsec_len + opt;
	struct hot_serial serial;
	struct hot_entry *e = lookup_valid(hot, key, key->flags, key->hash, now_ms, &serial);
	if (!e || head + e->body_len > key->limit) {
		/* Not kept, or too big for this client: its truncated form, if kept. */
		uint8_t tc = key->flags | HOT_KEY_TC;
		e = lookup_valid(hot, key, tc, key_hash(key, tc), now_ms, &serial);
		if (!e || key->limit > e->tc_limit)
			return hit;
	}
	if (head + e->body_len > out_cap)
		return hit;
	hit.len = replay(e, key, in, now_ms, serial, out);
	hit.stats = &e->stats;
	hit.truncated = e->tc_limit != 0;
	return hit;
}

/* ---- store ---------------------------------------------------------------------- */

/* Room for @p size bytes at the head (wrapping to the ring start when needed). */
static uint8_t *ring_reserve(struct tern_hot *hot, size_t size, uint64_t *pos)
{
	uint64_t off = hot->head % hot->ring_size;
	if (off + size > hot->ring_size) {
		hot->head += hot->ring_size - off;
		off = 0;
	}
	*pos = hot->head;
	hot->head += (size + 7) & ~(size_t)7;
	return hot->ring + off;
}

/* The end of the (possibly compressed) name at @p pos, or 0 when it runs past @p end. */
static size_t skip_name(const uint8_t *m, size_t pos, size_t end)
{
	while (pos < end) {
		uint8_t b = m[pos];
		if (b == 0)
			return pos + 1;
		if ((b & 0xc0) == 0xc0)
			return pos + 2 <= end ? pos + 2 : 0;
		if (b & 0xc0)
			return 0;
		pos += b + 1u;
	}
	return 0;
}

/*
 * Where the serial of the one SOA record among the @p count records of message @p m
 * (from @p pos to @p end) is: *off, 0 when there is no SOA. false: the records do not
 * parse, or there are several SOAs (which serial to follow is then unclear).
 */
static bool soa_serial_at(const uint8_t *m, size_t pos, size_t end, unsigned count,
                          uint16_t *off)
{
	*off = 0;
	for (unsigned i = 0; i < count; i++) {
		pos = skip_name(m, pos, end);
		if (pos == 0 || pos + 10 > end)
			return false;
		size_t rd = pos + 10, rdlen = knot_wire_read_u16(m + pos + 8);
		if (rd + rdlen > end)
			return false;
		if (knot_wire_read_u16(m + pos) == KNOT_RRTYPE_SOA) {
			size_t p = skip_name(m, rd, rd + rdlen);   /* MNAME, then RNAME */
			p = p ? skip_name(m, p, rd + rdlen) : 0;
			if (*off || p == 0 || p + 20 > rd + rdlen)
				return false;
			*off = (uint16_t)p;
		}
		pos = rd + rdlen;
	}
	return true;
}

bool tern_hot_store(struct tern_hot *hot, const struct tern_hot_key *key,
                    const struct tern_req *req, const uint8_t *ans, size_t len,
                    uint16_t truncated_at, const struct tern_stats_loc *stats)
{
	const struct tern_hot_hint *hint = &req->hot;
	size_t opt = key->edns ? HOT_OPT_LEN : 0;
	size_t head = KNOT_WIRE_HEADER_SIZE + key->qsec_len;
	uint16_t arcount = knot_wire_get_arcount(ans);
	if (key->name_len == 0 || len < head + opt ||
	    (opt && (arcount == 0 || ans[len - opt] != 0 ||
	             knot_wire_read_u16(ans + len - opt + 1) != KNOT_RRTYPE_OPT)))
		return false;
	size_t body_len = len - head - opt;
	size_t nttl = hint->ttls && !truncated_at ? hint->nttl : 0;
	for (size_t i = 0; i < nttl; i++) {
		if (hint->ttl_offs[i] < head || hint->ttl_offs[i] + 4u > len - opt)
			return false;   /* a TTL outside the body: not an answer we can patch */
	}
	bool limited = hint->until_ms || nttl;
	bool scoped = hint->scope && !hint->allow;   /* an allowed answer outlives its data */
	uint16_t serial_off = 0;
	if (scoped && hint->scope_serial &&
	    !soa_serial_at(ans, head, len - opt,
	                   knot_wire_get_ancount(ans) + knot_wire_get_nscount(ans) +
	                   (unsigned)arcount - (opt ? 1u : 0u), &serial_off))
		return false;
	size_t ncounters = hint->ncounters;
	size_t pre = (limited ? 16 : 0) + (scoped ? sizeof(struct hot_scoped) : 0);
	size_t size = sizeof(struct hot_entry) + pre + ncounters * sizeof(void *) +
	              key->name_len + body_len + nttl * 6;
	if (body_len > HOT_MAX_BODY || size > hot->ring_size / 4)
		return false;

	uint8_t flags = key->flags | (truncated_at ? HOT_KEY_TC : 0);
	uint64_t hash = key_hash(key, flags);
	struct hot_slot *slot;
	struct hot_entry *old = lookup(hot, key, flags, hash, &slot);
	if (!old) {
		/* An empty or overwritten way, else the oldest. */
		struct hot_slot *set = set_of(hot, hash);
		slot = &set[0];
		for (unsigned i = 0; i < HOT_WAYS; i++) {
			if (!slot_entry(hot, &set[i])) {
				slot = &set[i];
				break;
			}
			if (set[i].pos < slot->pos)
				slot = &set[i];
		}
	}
	uint64_t pos;
	struct hot_entry *e = (struct hot_entry *)ring_reserve(hot, size, &pos);
	*e = (struct hot_entry) {
		.epoch = hint->allow ? key->view_gen : key->epoch,
		.stats = *stats,
		.qtype = key->qtype,
		.name_len = key->name_len,
		.body_len = (uint16_t)body_len,
		.ancount = knot_wire_get_ancount(ans),
		.nscount = knot_wire_get_nscount(ans),
		.arcount = (uint16_t)(arcount - (opt ? 1 : 0)),
		.nttl = (uint16_t)nttl,
		.tc_limit = truncated_at,
		.listen = key->listen,
		.flags = flags,
		.hdr2 = ans[2],
		.hdr3 = ans[3],
		.ncounters = (uint8_t)ncounters,
		.opts = (uint8_t)((limited ? HOT_LIMITED : 0) | (hint->allow ? HOT_BY_VIEW : 0) |
		                  (scoped ? HOT_SCOPED : 0)),
		.name_off = (uint8_t)(pre + ncounters * sizeof(void *)),
	};
	uint8_t *p = e->data;
	if (limited) {
		uint64_t lim[2] = { hint->until_ms ? hint->until_ms : UINT64_MAX, hint->ttl_base_ms };
		memcpy(p, lim, sizeof(lim));
		p += sizeof(lim);
	}
	if (scoped) {
		struct hot_scoped s = { .scope = hint->scope, .id = hint->scope_id,
		                        .seen = hint->scope_seen, .part = hint->scope_part,
		                        .serial_off = serial_off };
		memcpy(p, &s, sizeof(s));
		p += sizeof(s);
	}
	memcpy(p, hint->counters, ncounters * sizeof(void *));
	p += ncounters * sizeof(void *);
	memcpy(p, key->name, key->name_len);
	p += key->name_len;
	memcpy(p, ans + head, body_len);
	p += body_len;
	for (size_t i = 0; i < nttl; i++, p += 6) {
		knot_wire_write_u16(p, hint->ttl_offs[i]);
		knot_wire_write_u32(p + 2, hint->ttls[i]);
	}
	slot->tag = tag_of(hash);
	slot->pos = pos + 1;
	return true;
}
