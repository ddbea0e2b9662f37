/*
 * The physical limit for benchmarks/bench_walk.py: the same nested 4+4 walks (x86-64 guest
 * tables over VT-d second-level tables, 4 KiB pages) as a tight C loop over a flat array
 * holding host memory [base, base + bytes). Same checks as svmkit's walkers: present bits,
 * PS leaves, reserved address bits, rights accumulated over the walk; no A/D updates (the
 * benchmark's tables already have them set, as after a first pass).
 */
#include <stdint.h>

#define ADDR 0x000ffffffffff000ULL
#define PS (1ULL << 7)

static inline int load(const uint64_t *mem, uint64_t base, uint64_t bytes, uint64_t pa,
                       uint64_t *out)
{
	if (pa < base || pa - base + 8 > bytes)
		return 0;
	*out = mem[(pa - base) >> 3];
	return 1;
}

/* second level: GPA -> HPA, 4 levels; returns 0 on a fault */
static inline int second(const uint64_t *mem, uint64_t base, uint64_t bytes, uint64_t root,
			 uint64_t gpa, uint64_t *hpa)
{
	uint64_t table = root, e = 0;
	int level;

	if (gpa >> 48)
		return 0;
	for (level = 4; level >= 1; level--) {
		if (!load(mem, base, bytes, table + ((gpa >> (12 + 9 * (level - 1))) & 511) * 8, &e))
			return 0;
		if (!(e & 3))
			return 0;
		if (level > 1 && level < 4 && (e & PS)) {
			uint64_t size = 1ULL << (12 + 9 * (level - 1));
			*hpa = (e & ADDR & ~(size - 1)) | (gpa & (size - 1));
			return 1;
		}
		if (level == 4 && (e & PS))
			return 0;
		if (!(e & 1))          /* read right */
			return 0;
		table = e & ADDR;
	}
	*hpa = table | (gpa & 0xfff);
	return 1;
}

int64_t translate(const uint64_t *mem, uint64_t base, uint64_t bytes, const uint64_t *vas,
		  int64_t n, uint64_t root, uint64_t sl_root, uint64_t *out)
{
	int64_t faults = 0, i;

	for (i = 0; i < n; i++) {
		uint64_t va = vas[i], table = root, e = 0, hpa, size = 4096;
		int level, ok = 1;
		int64_t top = (int64_t)va >> 47;

		if (top != 0 && top != -1) {
			out[i] = 0; faults++;
			continue;
		}
		for (level = 4; level >= 1; level--) {
			uint64_t gpa = table + ((va >> (12 + 9 * (level - 1))) & 511) * 8;
			if (!second(mem, base, bytes, sl_root, gpa, &hpa) ||
			    !load(mem, base, bytes, hpa, &e) || !(e & 1)) {
				ok = 0;
				break;
			}
			if (level > 1 && level < 4 && (e & PS)) {
				size = 1ULL << (12 + 9 * (level - 1));
				break;
			}
			table = e & ADDR;
		}
		if (ok && second(mem, base, bytes, sl_root,
				 (e & ADDR & ~(size - 1)) | (va & (size - 1)), &hpa)) {
			out[i] = hpa;
		} else {
			out[i] = 0;
			faults++;
		}
	}
	return faults;
}
