/*
 * The physical limit for benchmarks/bench_walk.py: the same nested 4+4 walks as
 * svmkit.translate (x86-64 guest tables over VT-d second-level tables, MAXPHYADDR and HAW
 * 52, a supervisor read) as a tight C loop over a flat array holding host memory
 * [base, base + bytes). Same checks, specialised by hand: present bits, PS leaves, the
 * reserved bits of each format (PS in the top entries, the low frame bits of large pages,
 * SNP and TM in second-level tables), the read right of every second-level entry, and the
 * accessed flag of the first-level entries, set when it is missing.
 */
#include <stdint.h>

#define ADDR	0x000ffffffffff000ULL
#define PS	(1ULL << 7)
#define SL_R	1ULL
#define SL_RW	3ULL
#define SL_SNP	(1ULL << 11)
#define SL_TM	(1ULL << 62)
#define X86_P	1ULL
#define X86_A	(1ULL << 5)

static inline int in_range(uint64_t base, uint64_t bytes, uint64_t pa)
{
	return pa >= base && pa - base + 8 <= bytes;
}

/* low frame bits that must be zero in a large leaf at level 2 or 3 (from bit `low` up) */
static inline uint64_t large_rsvd(int level, int low)
{
	uint64_t size = 1ULL << (12 + 9 * (level - 1));
	return (size - 1) & ~((1ULL << low) - 1);
}

/* second level: GPA -> HPA, 4 levels, read access; returns 0 on a fault */
static inline int second(const uint64_t *mem, uint64_t base, uint64_t bytes, uint64_t root,
			 uint64_t gpa, uint64_t *hpa)
{
	uint64_t table = root, e = 0;
	int level;

	if (gpa >> 48)
		return 0;
	for (level = 4; level >= 1; level--) {
		uint64_t pa = table + ((gpa >> (12 + 9 * (level - 1))) & 511) * 8;

		if (!in_range(base, bytes, pa))
			return 0;
		e = mem[(pa - base) >> 3];
		if (!(e & SL_RW))
			return 0;
		if (!(e & SL_R))
			return 0;
		if (level == 1 || ((level == 2 || level == 3) && (e & PS))) {
			uint64_t size = 1ULL << (12 + 9 * (level - 1));

			if (level > 1 && (e & large_rsvd(level, 12)))
				return 0;
			*hpa = (e & ADDR & ~(size - 1)) | (gpa & (size - 1));
			return 1;
		}
		if (e & (SL_SNP | SL_TM | (level == 4 ? PS : 0)))
			return 0;
		table = e & ADDR;
	}
	return 0;
}

int64_t translate(uint64_t *mem, uint64_t base, uint64_t bytes, const uint64_t *vas,
		  int64_t n, uint64_t root, uint64_t sl_root, uint64_t *out)
{
	int64_t faults = 0, i;

	for (i = 0; i < n; i++) {
		uint64_t va = vas[i], table = root, e = 0, hpa = 0, size = 4096;
		uint64_t used[4];
		int level, k, nused = 0, ok = 1;
		int64_t top = (int64_t)va >> 47;

		if (top != 0 && top != -1) {
			out[i] = 0;
			faults++;
			continue;
		}
		for (level = 4; level >= 1; level--) {
			uint64_t gpa = table + ((va >> (12 + 9 * (level - 1))) & 511) * 8;

			if (!second(mem, base, bytes, sl_root, gpa, &hpa) ||
			    !in_range(base, bytes, hpa)) {
				ok = 0;
				break;
			}
			e = mem[(hpa - base) >> 3];
			used[nused++] = hpa;
			if (!(e & X86_P)) {
				ok = 0;
				break;
			}
			if (level == 1)
				break;
			if ((level == 2 || level == 3) && (e & PS)) {
				size = 1ULL << (12 + 9 * (level - 1));
				if (e & large_rsvd(level, 13))
					ok = 0;
				break;
			}
			if (level == 4 && (e & PS)) {
				ok = 0;
				break;
			}
			table = e & ADDR;
		}
		if (ok) {
			for (k = 0; k < nused; k++)
				if (!(mem[(used[k] - base) >> 3] & X86_A))
					mem[(used[k] - base) >> 3] |= X86_A;
			ok = second(mem, base, bytes, sl_root,
				    (e & ADDR & ~(size - 1)) | (va & (size - 1)), &hpa);
		}
		if (ok) {
			out[i] = hpa;
		} else {
			out[i] = 0;
			faults++;
		}
	}
	return faults;
}
