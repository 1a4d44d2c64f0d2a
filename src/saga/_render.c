/* Log lines of a run of records in C: what saga.render.line prints, byte for byte, at a fraction of
 * its cost (docs/benchmarks.md, "sagafs").  saga.fastrender loads it with ctypes and drives it.
 *
 * The fixed fields (time, cpu, pids, uid, comm, return value, duration, flags) are formatted here.
 * What a call's arguments print as is not: it comes from saga.render (the reference), cached here by
 * everything it depends on.  When a record needs a text this library has not been taught (a call's
 * arguments, an odd comm, the context words of a pid), saga_render stops at that record and says
 * which; Python renders that text, teaches it (saga_learn) and resumes.  Built by `make build`
 * (src/saga/_render.so), one binary for every Python version: it links nothing but libc.
 *
 * saga_render_rows does the same for an archive search's matches (saga.store.query): rows of fixed
 * fields (the layout of saga.store.columns.FAILURE_ROW, given by saga_render_row_layout) whose paths
 * are string ids.  A call with paths is cached as a template (its text with each path left out) and
 * each path's quoted text by its id, so the calls of a thousand files are one text and a thousand
 * quoted paths, not a thousand texts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <linux/saga.h>

enum status { R_DONE, R_MISS_CALL, R_MISS_COMM, R_MISS_WHERE, R_FULL, R_BAD, R_MISS_TEMPLATE, R_MISS_PATH };
/* K_ROW: a row's call (its text, or its template), K_PATH: a quoted path by string id; K_ONCE: the text of
 * the next row's call, not kept (a call with an aux blob: argv, an address). */
enum kind { K_CALL, K_COMM, K_WHERE, K_ROW, K_PATH, K_ONCE, NTABLES = K_ONCE };
/* The fields of a row saga_render_rows reads, in the order of saga_render_row_layout's offsets. */
enum row_field { F_TS, F_NR, F_RET, F_PID, F_TID, F_UID, F_DURATION, F_FLAGS, F_CPU, F_ARGS, F_COMM, F_PATH0,
		 F_PATH1, NFIELDS };
/* In a template, a path's place: TEMPLATE_MARK then its index (0 or 1); no text saga prints holds a NUL. */
#define TEMPLATE_MARK '\0'
#define NO_REG 255
/* How a slot's return value prints (saga.render.format_ret): decimal, an address in hex, or by a
 * printer of its own (then the cached text holds " = ret" too and the key holds the return value). */
enum ret_mode { RET_DEC, RET_HEX, RET_TEXT };

#define FIXED sizeof(struct saga_event)
#define MAX_KEY (16 + FIXED + 65536)

struct entry {
	uint64_t hash;
	uint32_t key_off, key_len, text_off, text_len;
};

/* key -> text, open addressing; emptied whole when full (the texts are made again on demand). */
struct table {
	struct entry *slots;
	uint32_t mask, used, max_used;
	char *arena;
	size_t len, cap;
};

struct ctx {
	struct table t[NTABLES];
	uint8_t ret_mode[65536];
	char errno_text[4096][24];     /* " -N NAME" is built from these: index = errno */
	char flag_name[16][24];
	uint16_t flag_bit[16];
	int nflags;
	uint64_t sec;                  /* the second `date` is for */
	char date[32];
	int date_len;
	uint8_t key[MAX_KEY];
	uint32_t row_off[NFIELDS], row_size;
	uint8_t path_reg[65536][2];    /* the registers of a slot's path arguments (NO_REG: none): templates */
	char *once;                    /* K_ONCE */
	uint32_t once_len, once_cap;
	int once_set;
	/* the texts of the calls with an aux blob of the rows of a saga_render_rows pass (saga_render_aux) */
	const uint32_t *aux_rows, *aux_ends;
	const char *aux_text;
	uint32_t aux_n, aux_at;
};

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
	uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
	uint64_t w;

	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
		h ^= h >> 31;
	}
	w = 0;
	memcpy(&w, p, n);
	h = (h ^ w) * 0x94D049BB133111EBull;
	return h ^ (h >> 29);
}

static int table_init(struct table *t, uint32_t slots, size_t arena)
{
	t->slots = calloc(slots, sizeof(*t->slots));
	t->arena = malloc(arena);
	if (!t->slots || !t->arena)
		return -1;
	t->mask = slots - 1;
	t->max_used = slots / 2;
	t->used = 0;
	t->len = 0;
	t->cap = arena;
	return 0;
}

static void table_clear(struct table *t)
{
	if (!t->used)
		return;
	memset(t->slots, 0, (size_t)(t->mask + 1) * sizeof(*t->slots));
	t->used = 0;
	t->len = 0;
}

/* The entry of key, or the empty slot where it goes.  key_len 0 marks an empty slot (no key is empty). */
static struct entry *table_find(struct table *t, const uint8_t *key, uint32_t len, uint64_t h)
{
	uint32_t i = (uint32_t)h & t->mask;

	for (;; i = (i + 1) & t->mask) {
		struct entry *e = &t->slots[i];

		if (!e->key_len)
			return e;
		if (e->hash == h && e->key_len == len && !memcmp(t->arena + e->key_off, key, len))
			return e;
	}
}

static int table_put(struct table *t, const uint8_t *key, uint32_t len, const char *text, uint32_t text_len)
{
	uint64_t h = hash_bytes(key, len);
	struct entry *e;

	if ((size_t)len + text_len > t->cap)
		return -1;
	if (t->used >= t->max_used || t->len + len + text_len > t->cap)
		table_clear(t);
	e = table_find(t, key, len, h);
	if (e->key_len)
		return 0;
	e->hash = h;
	e->key_off = (uint32_t)t->len;
	e->key_len = len;
	memcpy(t->arena + t->len, key, len);
	t->len += len;
	e->text_off = (uint32_t)t->len;
	e->text_len = text_len;
	memcpy(t->arena + t->len, text, text_len);
	t->len += text_len;
	t->used++;
	return 0;
}

/* What a call's text depends on (saga.render.format_args: the registers, slot, flags, path lengths, aux
 * length and the tail), and its return value when the slot prints that by a printer of its own. */
static uint32_t call_key(struct ctx *c, const struct saga_event *ev, const uint8_t *rec)
{
	uint8_t *k = c->key;
	uint32_t tail = ev->size - (uint32_t)FIXED;

	memcpy(k, &ev->nr, 2);
	memcpy(k + 2, &ev->flags, 2);
	memcpy(k + 4, ev->path_len, sizeof(ev->path_len));
	memcpy(k + 4 + sizeof(ev->path_len), &ev->aux_len, 2);
	k += 6 + sizeof(ev->path_len);
	memcpy(k, ev->args, sizeof(ev->args));
	k += sizeof(ev->args);
	if (c->ret_mode[ev->nr] == RET_TEXT) {
		memcpy(k, &ev->ret, 8);
		k += 8;
	}
	memcpy(k, rec + FIXED, tail);
	return (uint32_t)(k + tail - c->key);
}

static uint32_t where_key(struct ctx *c, const struct saga_event *ev)
{
	memcpy(c->key, &ev->pid, 4);
	memcpy(c->key + 4, &ev->cgroup_id, 8);
	return 12;
}

/* The comm bytes without their NUL padding; 1 when they print as they are (saga.render._comm_token). */
static int comm_plain(const struct saga_event *ev, uint32_t *len)
{
	uint32_t n = SAGA_COMM_LEN;

	while (n && !ev->comm[n - 1])
		n--;
	*len = n;
	if (!n)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)ev->comm[i];

		if (ch < 33 || ch >= 127 || ch == '"' || ch == '\\')
			return 0;
	}
	return 1;
}

static const struct entry *lookup(struct table *t, const uint8_t *key, uint32_t len)
{
	const struct entry *e = table_find(t, key, len, hash_bytes(key, len));

	return e->key_len ? e : NULL;
}

/* The comm as it prints: its bytes (*comm NULL) or its quoted text from the comm table; -1 when that
 * text has not been taught. */
static int comm_of(struct ctx *c, const struct saga_event *ev, const struct entry **comm, uint32_t *len)
{
	*comm = NULL;
	if (comm_plain(ev, len))
		return 0;
	*comm = lookup(&c->t[K_COMM], (const uint8_t *)ev->comm, SAGA_COMM_LEN);
	if (!*comm)
		return -1;
	*len = (*comm)->text_len;
	return 0;
}

static char *put_u64(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *put_s64(char *p, int64_t v)
{
	if (v < 0) {
		*p++ = '-';
		return put_u64(p, (uint64_t)0 - (uint64_t)v);
	}
	return put_u64(p, (uint64_t)v);
}

static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

#define PUT_LIT(p, s) put(p, s, sizeof(s) - 1)

/* saga.render.iso_time: the date and time of day, kept for the second they are of. */
static char *put_time(struct ctx *c, char *p, uint64_t ts)
{
	uint64_t sec = ts / 1000000000u;
	uint32_t ns = (uint32_t)(ts % 1000000000u);

	if (sec / 86400 != c->sec / 86400 || !c->date_len) {   /* a new day: its date (UTC days are 86,400 s) */
		time_t t = (time_t)sec;
		struct tm tm;

		gmtime_r(&t, &tm);
		c->date_len = snprintf(c->date, sizeof(c->date), "%04d-%02d-%02dT", tm.tm_year + 1900, tm.tm_mon + 1,
				       tm.tm_mday);
	}
	c->sec = sec;
	p = put(p, c->date, (size_t)c->date_len);
	sec %= 86400;
	p[0] = (char)('0' + sec / 36000);
	p[1] = (char)('0' + sec / 3600 % 10);
	p[2] = ':';
	p[3] = (char)('0' + sec % 3600 / 600);
	p[4] = (char)('0' + sec % 600 / 60);
	p[5] = ':';
	p[6] = (char)('0' + sec % 60 / 10);
	p[7] = (char)('0' + sec % 10);
	p += 8;
	*p++ = '.';
	for (int i = 8; i >= 0; i--, ns /= 10)
		p[i] = (char)('0' + ns % 10);
	p += 9;
	*p++ = 'Z';
	return p;
}

/* saga.render.format_ret for the slots without a printer of their own. */
static char *put_ret(struct ctx *c, char *p, const struct saga_event *ev)
{
	int64_t ret = ev->ret;

	if (ev->flags & SAGA_EVF_NORETURN)
		return PUT_LIT(p, "?");
	if (ret < 0 && ret > -4096) {
		p = put_s64(p, ret);
		*p++ = ' ';
		return put(p, c->errno_text[-ret], strlen(c->errno_text[-ret]));
	}
	if (c->ret_mode[ev->nr] == RET_HEX) {
		p = PUT_LIT(p, "0x");
		return p + sprintf(p, "%llx", (unsigned long long)ev->ret);
	}
	return put_s64(p, ret);
}

/* saga.render.duration_text */
static char *put_duration(char *p, const struct saga_event *ev)
{
	uint64_t ns = ev->duration_ns;

	if (ev->flags & (SAGA_EVF_NO_ENTER | SAGA_EVF_NORETURN))
		return PUT_LIT(p, "?");
	if (ns < 1000) {
		p = put_u64(p, ns);
		return PUT_LIT(p, "ns");
	}
	if (ns < 1000000000u) {
		p = put_u64(p, ns / 1000);
		return PUT_LIT(p, "us");
	}
	return p + sprintf(p, "%.3fs", (double)ns / 1e9);
}

static char *put_flags(struct ctx *c, char *p, uint16_t flags)
{
	int first = 1;

	flags &= (uint16_t)~SAGA_EVF_AUX_MASK;
	if (!flags)
		return p;
	p = PUT_LIT(p, " [");
	for (int i = 0; i < c->nflags; i++) {
		if (!(flags & c->flag_bit[i]))
			continue;
		if (!first)
			*p++ = ',';
		first = 0;
		p = put(p, c->flag_name[i], strlen(c->flag_name[i]));
	}
	*p++ = ']';
	return p;
}

void saga_render_free(struct ctx *c)
{
	if (!c)
		return;
	for (int i = 0; i < NTABLES; i++) {
		free(c->t[i].slots);
		free(c->t[i].arena);
	}
	free(c->once);
	free(c);
}

/* A line up to its comm: time, cpu, pids, uid, comm (from the comm table when it must be quoted). */
static char *put_who(struct ctx *c, char *p, const struct saga_event *ev, const struct entry *comm, uint32_t comm_len)
{
	p = put_time(c, p, ev->ts_ns);
	p = PUT_LIT(p, " cpu=");
	p = put_u64(p, ev->cpu);
	p = PUT_LIT(p, " pid=");
	p = put_u64(p, ev->pid);
	p = PUT_LIT(p, " tid=");
	p = put_u64(p, ev->tid);
	p = PUT_LIT(p, " uid=");
	p = put_u64(p, ev->uid);
	p = PUT_LIT(p, " comm=");
	return comm ? put(p, c->t[K_COMM].arena + comm->text_off, comm->text_len) : put(p, ev->comm, comm_len);
}

/* A line after its call's text: ` = ret` (unless the call's text has it), duration, flags, newline. */
static char *put_end(struct ctx *c, char *p, const struct saga_event *ev)
{
	if (c->ret_mode[ev->nr] != RET_TEXT) {
		p = PUT_LIT(p, " = ");
		p = put_ret(c, p, ev);
	}
	p = PUT_LIT(p, " <");
	p = put_duration(p, ev);
	*p++ = '>';
	p = put_flags(c, p, ev->flags);
	*p++ = '\n';
	return p;
}

struct ctx *saga_render_new(void)
{
	struct ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (table_init(&c->t[K_CALL], 1u << 16, 32u << 20) || table_init(&c->t[K_COMM], 1u << 12, 1u << 20)
	    || table_init(&c->t[K_WHERE], 1u << 14, 4u << 20) || table_init(&c->t[K_ROW], 1u << 16, 16u << 20)
	    || table_init(&c->t[K_PATH], 1u << 16, 8u << 20)) {
		saga_render_free(c);
		return NULL;
	}
	memset(c->path_reg, NO_REG, sizeof(c->path_reg));
	for (int err = 0; err < 4096; err++)   /* saga.decode.errno_name of an errno it has no name for */
		snprintf(c->errno_text[err], sizeof(c->errno_text[err]), "E%d", err);
	return c;
}



/* Tables from saga.render: a slot's return mode, an errno's name, a flag bit's name. */
void saga_render_ret_mode(struct ctx *c, uint32_t slot, uint32_t mode)
{
	if (slot < 65536)
		c->ret_mode[slot] = (uint8_t)mode;
}

void saga_render_errno(struct ctx *c, uint32_t err, const char *name)
{
	if (err < 4096)
		snprintf(c->errno_text[err], sizeof(c->errno_text[err]), "%s", name);
}

void saga_render_flag(struct ctx *c, uint32_t bit, const char *name)
{
	if (c->nflags < 16) {
		c->flag_bit[c->nflags] = (uint16_t)bit;
		snprintf(c->flag_name[c->nflags], sizeof(c->flag_name[c->nflags]), "%s", name);
		c->nflags++;
	}
}

/* Forget the context words (they are asked again at every pass: the daemon learns processes as it goes). */
void saga_render_begin(struct ctx *c)
{
	table_clear(&c->t[K_WHERE]);
}

void saga_render_forget(struct ctx *c)
{
	for (int i = 0; i < NTABLES; i++)
		table_clear(&c->t[i]);
}

/* Teach the text of `kind` for the record at rec (its key is made from the record). */
int saga_render_learn(struct ctx *c, int kind, const uint8_t *rec, const char *text, uint32_t text_len)
{
	struct saga_event ev;
	uint32_t len;

	if (kind < K_CALL || kind > K_WHERE)
		return -1;
	memcpy(&ev, rec, FIXED);
	if (kind == K_CALL)
		len = call_key(c, &ev, rec);
	else if (kind == K_COMM) {
		memcpy(c->key, ev.comm, SAGA_COMM_LEN);
		len = SAGA_COMM_LEN;
	} else
		len = where_key(c, &ev);
	return table_put(&c->t[kind], c->key, len, text, text_len);
}

/* Render the records of buf[st[0]:len], at most max_records of them, into out[st[2]:cap].  st[0] is
 * the offset of the next record, st[1] counts the records rendered, st[2] the bytes written; all three
 * advance.  with_where: each line carries its pid's context words (K_WHERE).  Returns R_DONE, or why
 * it stopped at the record at st[0]: a text it has not been taught (R_MISS_*), no room left (R_FULL),
 * a malformed record (R_BAD). */
int saga_render(struct ctx *c, const uint8_t *buf, size_t len, uint32_t max_records, int with_where,
		char *out, size_t cap, uint64_t *st)
{
	size_t off = st[0];
	uint32_t done = 0;
	char *p = out + st[2];
	int status = R_DONE;

	while (done < max_records && off < len) {
		struct saga_event ev;
		const uint8_t *rec = buf + off;
		const struct entry *call, *comm = NULL, *where = NULL;
		uint32_t klen, comm_len;
		size_t need;

		if (len - off < FIXED) {
			status = R_BAD;
			break;
		}
		memcpy(&ev, rec, FIXED);
		if (ev.size < FIXED || ev.size & 7 || ev.size > len - off
		    || (uint32_t)ev.path_len[0] + ev.path_len[1] + ev.aux_len > ev.size - FIXED) {
			status = R_BAD;
			break;
		}
		klen = call_key(c, &ev, rec);
		call = lookup(&c->t[K_CALL], c->key, klen);
		if (!call) {
			status = R_MISS_CALL;
			break;
		}
		if (comm_of(c, &ev, &comm, &comm_len)) {
			status = R_MISS_COMM;
			break;
		}
		if (with_where) {
			klen = where_key(c, &ev);
			where = lookup(&c->t[K_WHERE], c->key, klen);
			if (!where) {
				status = R_MISS_WHERE;
				break;
			}
		}
		/* the fixed words and numbers take under 320 bytes; the texts their own length */
		need = 320 + comm_len + call->text_len + (where ? where->text_len : 0) + 32 * (size_t)c->nflags;
		if ((size_t)(cap - (size_t)(p - out)) < need) {
			status = R_FULL;
			break;
		}
		p = put_who(c, p, &ev, comm, comm_len);
		if (where)
			p = put(p, c->t[K_WHERE].arena + where->text_off, where->text_len);
		*p++ = ' ';
		p = put(p, c->t[K_CALL].arena + call->text_off, call->text_len);
		p = put_end(c, p, &ev);
		off += ev.size;
		done++;
	}
	st[0] = off;
	st[1] += done;
	st[2] = (uint64_t)(p - out);
	return status;
}

/* -- rows of the archive ------------------------------------------------------------------------- */

/* Where each row_field is in a row (saga.store.columns.FAILURE_ROW), and a row's size. */
int saga_render_row_layout(struct ctx *c, const uint32_t *offsets, uint32_t nfields, uint32_t size)
{
	if (nfields != NFIELDS)
		return -1;
	memcpy(c->row_off, offsets, sizeof(c->row_off));
	c->row_size = size;
	return 0;
}

/* The registers of a slot's first two path arguments: its calls with paths are cached as templates (a slot
 * saga.render prints otherwise than each argument by itself is never given one). */
void saga_render_path_regs(struct ctx *c, uint32_t slot, uint32_t reg0, uint32_t reg1)
{
	if (slot < 65536 && reg0 < 6) {
		c->path_reg[slot][0] = (uint8_t)reg0;
		c->path_reg[slot][1] = reg1 < 6 ? (uint8_t)reg1 : NO_REG;
	}
}

#define ROW(type, r, f) ({ type v_; memcpy(&v_, (r) + c->row_off[f], sizeof(v_)); v_; })

/* What a row's call text depends on: the slot, flags and registers, and the return value when the slot
 * prints it by a printer of its own; then either the path ids (the whole text; with the scope they are ids
 * of), or, for a template, which paths are there (the registers they were read from left out: their text
 * does not show them). */
static uint32_t row_key(struct ctx *c, const uint8_t *r, uint64_t scope, int *template)
{
	uint8_t *k = c->key;
	uint16_t nr = ROW(uint16_t, r, F_NR), flags = ROW(uint16_t, r, F_FLAGS);
	uint32_t path[2] = { ROW(uint32_t, r, F_PATH0), ROW(uint32_t, r, F_PATH1) };
	uint64_t args[6];
	int t = c->path_reg[nr][0] != NO_REG && !(flags & (SAGA_EVF_PATH_TRUNC | SAGA_EVF_AUX_MASK));

	memcpy(args, r + c->row_off[F_ARGS], sizeof(args));
	k[0] = (uint8_t)t;
	memcpy(k + 1, &nr, 2);
	memcpy(k + 3, &flags, 2);
	k += 5;
	if (t) {
		for (int j = 0; j < 2; j++)
			if (path[j] && c->path_reg[nr][j] != NO_REG)
				args[c->path_reg[nr][j]] = 0;
		*k++ = (uint8_t)((path[0] != 0) | (path[1] != 0) << 1);
	} else {
		memcpy(k, path, sizeof(path));
		k += sizeof(path);
		if (path[0] || path[1]) {
			memcpy(k, &scope, 8);
			k += 8;
		}
	}
	memcpy(k, args, sizeof(args));
	k += sizeof(args);
	if (c->ret_mode[nr] == RET_TEXT) {
		int64_t ret = ROW(int64_t, r, F_RET);

		memcpy(k, &ret, 8);
		k += 8;
	}
	*template = t;
	return (uint32_t)(k - c->key);
}

/* Teach a row's text: K_ROW (its call, or its template: row_key decides which), K_COMM, or K_ONCE. */
int saga_render_learn_row(struct ctx *c, int kind, const uint8_t *row, uint64_t scope, const char *text,
			  uint32_t text_len)
{
	int template;

	if (kind == K_ONCE) {
		if (text_len > c->once_cap) {
			char *bigger = realloc(c->once, text_len);

			if (!bigger)
				return -1;
			c->once = bigger;
			c->once_cap = text_len;
		}
		memcpy(c->once, text, text_len);
		c->once_len = text_len;
		c->once_set = 1;
		return 0;
	}
	if (kind == K_COMM)
		return table_put(&c->t[K_COMM], row + c->row_off[F_COMM], SAGA_COMM_LEN, text, text_len);
	if (kind != K_ROW)
		return -1;
	return table_put(&c->t[K_ROW], c->key, row_key(c, row, scope, &template), text, text_len);
}

/* The call texts of the rows with an aux blob (argv, an address: each its own) for the next saga_render_rows
 * pass: rows[] (ascending row numbers), their texts back to back, ends[i] where the i-th ends (n 0: none;
 * the caller keeps them until the pass is done).  A row with an aux blob not among them is asked for. */
void saga_render_aux(struct ctx *c, uint32_t n, const uint32_t *rows, const uint32_t *ends, const char *text)
{
	c->aux_rows = rows;
	c->aux_ends = ends;
	c->aux_text = text;
	c->aux_n = n;
	c->aux_at = 0;
}

/* A path's key: the scope its id is of (one search: string ids are an archive's), the id. */
static uint32_t path_key(struct ctx *c, uint64_t scope, uint32_t id)
{
	memcpy(c->key, &scope, 8);
	memcpy(c->key + 8, &id, 4);
	return 12;
}

/* Teach the quoted text of n paths by string id: texts back to back, ends[i] where the i-th ends. */
int saga_render_learn_paths(struct ctx *c, uint64_t scope, uint32_t n, const uint32_t *ids, const char *texts,
			    const uint32_t *ends)
{
	uint32_t start = 0;

	for (uint32_t i = 0; i < n; start = ends[i], i++)
		if (table_put(&c->t[K_PATH], c->key, path_key(c, scope, ids[i]), texts + start, ends[i] - start))
			return -1;
	return 0;
}

/* The lines of rows[st[0]:nrows] into out[st[2]:cap], as saga_render does for records (the same words,
 * no context words: the archive keeps none); their path ids are of `scope`.  st[0] is the next row, st[1] counts the rows rendered,
 * st[2] the bytes written.  Returns R_DONE, or why it stopped at row st[0]: R_MISS_CALL (its call's text:
 * st[3] says K_ROW, or K_ONCE for a call with an aux blob), R_MISS_TEMPLATE (its template), R_MISS_COMM,
 * R_MISS_PATH (st[3]: the string id), R_FULL. */
int saga_render_rows(struct ctx *c, const uint8_t *rows, uint32_t nrows, uint64_t scope, char *out, size_t cap,
		     uint64_t *st)
{
	uint32_t i = (uint32_t)st[0], done = 0;
	char *p = out + st[2];
	int status = R_DONE;

	for (; i < nrows; i++) {
		const uint8_t *r = rows + (size_t)i * c->row_size;
		struct saga_event ev;
		const struct entry *comm = NULL, *paths[2] = { NULL, NULL };
		const char *call;
		uint32_t call_len, comm_len, path[2] = { ROW(uint32_t, r, F_PATH0), ROW(uint32_t, r, F_PATH1) };
		int template = 0;
		size_t need;

		ev.flags = ROW(uint16_t, r, F_FLAGS);
		ev.nr = ROW(uint16_t, r, F_NR);
		if (c->once_set) {
			call = c->once;
			call_len = c->once_len;
		} else if (ev.flags & SAGA_EVF_AUX_MASK) {
			while (c->aux_at < c->aux_n && c->aux_rows[c->aux_at] < i)
				c->aux_at++;
			if (c->aux_at == c->aux_n || c->aux_rows[c->aux_at] != i) {
				status = R_MISS_CALL;
				st[3] = K_ONCE;
				break;
			}
			call = c->aux_text + (c->aux_at ? c->aux_ends[c->aux_at - 1] : 0);
			call_len = c->aux_ends[c->aux_at] - (c->aux_at ? c->aux_ends[c->aux_at - 1] : 0);
		} else {
			uint32_t klen = row_key(c, r, scope, &template);
			const struct entry *e = lookup(&c->t[K_ROW], c->key, klen);

			if (!e) {
				status = template ? R_MISS_TEMPLATE : R_MISS_CALL;
				st[3] = K_ROW;
				break;
			}
			call = c->t[K_ROW].arena + e->text_off;
			call_len = e->text_len;
		}
		if (template) {
			for (int j = 0; j < 2; j++) {
				if (!path[j] || c->path_reg[ev.nr][j] == NO_REG)
					continue;
				paths[j] = lookup(&c->t[K_PATH], c->key, path_key(c, scope, path[j]));
				if (!paths[j]) {
					status = R_MISS_PATH;
					st[3] = path[j];
					goto stop;
				}
			}
		}
		memcpy(ev.comm, r + c->row_off[F_COMM], SAGA_COMM_LEN);
		if (comm_of(c, &ev, &comm, &comm_len)) {
			status = R_MISS_COMM;
			break;
		}
		need = 320 + comm_len + call_len + 32 * (size_t)c->nflags;
		for (int j = 0; j < 2; j++)
			need += paths[j] ? paths[j]->text_len : 0;
		if ((size_t)(cap - (size_t)(p - out)) < need) {
			status = R_FULL;
			break;
		}
		/* as the record of the current ABI the row is (saga.store.columns.records: cpu is a u16 there) */
		ev.ts_ns = ROW(uint64_t, r, F_TS);
		ev.ret = ROW(int64_t, r, F_RET);
		ev.pid = ROW(uint32_t, r, F_PID);
		ev.tid = ROW(uint32_t, r, F_TID);
		ev.uid = ROW(uint32_t, r, F_UID);
		ev.cpu = (__typeof__(ev.cpu))ROW(uint32_t, r, F_CPU);
		ev.duration_ns = ROW(uint64_t, r, F_DURATION);
		p = put_who(c, p, &ev, comm, comm_len);
		*p++ = ' ';
		if (template) {
			const char *end = call + call_len, *mark;

			while ((mark = memchr(call, TEMPLATE_MARK, (size_t)(end - call))) && mark + 1 < end) {
				const struct entry *e = paths[mark[1] & 1];

				p = put(p, call, (size_t)(mark - call));
				if (e)
					p = put(p, c->t[K_PATH].arena + e->text_off, e->text_len);
				call = mark + 2;
			}
			p = put(p, call, (size_t)(end - call));
		} else {
			p = put(p, call, call_len);
		}
		p = put_end(c, p, &ev);
		c->once_set = 0;
		done++;
	}
stop:
	st[0] = i;
	st[1] += done;
	st[2] = (uint64_t)(p - out);
	return status;
}
