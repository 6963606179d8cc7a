/*
 * tests/vm/test_driver.c — the driver's view (<kslab/vm.h>): a "character
 * device" whose mmap method maps a reserved low-memory buffer with
 * remap_page_range (pgoff 0) or a vmalloc ring through its nopage (pgoff
 * RING_PGOFF on), as a 2.4 driver does.  Two mms and the kernel share the
 * buffer, a fork child (mm_fork) shares it and never copies it, a frame
 * that is not reserved is left unmapped, the ring's nopage walks the
 * kernel page tables and gives SIGBUS (BUS_ADRERR) past the ring's end;
 * open and close are called as 2.4 calls them, so they balance across
 * splits, mm_fork and mmput; the kernel half of every pgd is
 * swapper_pg_dir's; a host fork() gives the child its own copy of the
 * shared buffer; kiobufs pin a user buffer.
 */
#include <setjmp.h>
#include <sys/wait.h>

#include <kslab/kslab.h>

#include "vmtest.h"

#define RW (PROT_READ | PROT_WRITE)
#define BUF_ORDER 1
#define BUF_PAGES (1UL << BUF_ORDER)
#define RING_PAGES 4UL
#define RING_PGOFF 16UL

/* ---- the device ---- */

struct chardev {
    char *buf;  /* __get_free_pages, reserved page by page */
    char *ring; /* vmalloc */
    int opens, closes, mmaps;
    int fail_mmap; /* the method maps the buffer, then fails */
};

static void dev_open(struct vm_area_struct *vma)
{
    ((struct chardev *)vma->vm_private_data)->opens++;
}

static void dev_close(struct vm_area_struct *vma)
{
    ((struct chardev *)vma->vm_private_data)->closes++;
}

/* The seed's get_page: the kernel's page tables, walked by hand. */
static struct page *ring_page(unsigned long address)
{
    pgd_t *pgd;
    pmd_t *pmd;
    pte_t *pte;
    struct page *page = NOPAGE_SIGBUS;
    pgd = pgd_offset_k(address);
    if (!pgd_none(*pgd)) {
        pmd = pmd_offset(pgd, address);
        if (!pmd_none(*pmd)) {
            pte = pte_offset(pmd, address);
            if (pte_present(*pte))
                page = pte_page(*pte);
        }
    }
    return page;
}

static struct page *dev_nopage(struct vm_area_struct *vma,
                               unsigned long address, int write_access)
{
    (void)write_access;
    struct chardev *dev = vma->vm_private_data;
    unsigned long off =
        address - vma->vm_start + ((vma->vm_pgoff - RING_PGOFF) << PAGE_SHIFT);
    if (off >= RING_PAGES * PAGE_SIZE)
        return NOPAGE_SIGBUS;
    struct page *page = ring_page((unsigned long)(dev->ring + off));
    if (page != NOPAGE_SIGBUS)
        get_page(page);
    return page;
}

static const struct vm_operations_struct dev_vm_ops = {
    .open = dev_open,
    .close = dev_close,
    .nopage = dev_nopage,
};

static int dev_mmap(struct file *file, struct vm_area_struct *vma)
{
    struct chardev *dev = file->private_data;
    unsigned long size = vma->vm_end - vma->vm_start;
    vma->vm_private_data = dev;
    vma->vm_ops = &dev_vm_ops;
    dev->mmaps++;
    if (vma->vm_pgoff >= RING_PGOFF)
        return 0; /* the ring: nopage */
    if (size > BUF_PAGES * PAGE_SIZE)
        return -EINVAL;
    if (remap_page_range(vma, vma->vm_start, virt_to_phys(dev->buf), size,
                         vma->vm_page_prot))
        return -EAGAIN;
    if (dev->fail_mmap) {
        dev->mmaps--;
        return -EIO;
    }
    return 0;
}

static const struct file_operations dev_fops = {.mmap = dev_mmap};

static struct chardev dev;
static struct file dev_file = {.f_op = &dev_fops, .private_data = &dev};

static int dev_setup(void **state)
{
    (void)state;
    memset(&dev, 0, sizeof dev);
    dev.buf = (char *)__get_free_pages(GFP_KERNEL, BUF_ORDER);
    dev.ring = vmalloc(RING_PAGES * PAGE_SIZE);
    if (!dev.buf || !dev.ring)
        return -1;
    memset(dev.buf, 0, BUF_PAGES * PAGE_SIZE);
    memset(dev.ring, 0, RING_PAGES * PAGE_SIZE);
    for (unsigned long i = 0; i < BUF_PAGES; i++)
        mem_map_reserve(virt_to_page(dev.buf + i * PAGE_SIZE));
    return 0;
}

static int dev_teardown(void **state)
{
    (void)state;
    for (unsigned long i = 0; i < BUF_PAGES; i++)
        mem_map_unreserve(virt_to_page(dev.buf + i * PAGE_SIZE));
    free_pages((unsigned long)dev.buf, BUF_ORDER);
    vfree(dev.ring);
    return 0;
}

static unsigned long map_dev(struct mm_struct *mm, unsigned long pages,
                             int flags, unsigned long pgoff)
{
    unsigned long a = do_mmap_pgoff(mm, &dev_file, 0, pages * PAGE_SIZE, RW,
                                    (unsigned long)flags, pgoff);
    assert_false(IS_ERR_VALUE(a));
    return a;
}

/* The pte of user address a, by the public walk; NULL when no table. */
static pte_t *walk(struct mm_struct *mm, unsigned long a)
{
    pgd_t *pgd = pgd_offset(mm, a);
    if (pgd_none(*pgd))
        return NULL;
    pmd_t *pmd = pmd_offset(pgd, a);
    if (pmd_none(*pmd))
        return NULL;
    return pte_offset(pmd, a);
}

/* ---- remap_page_range ---- */

static void test_remap_shared_by_two_mms_and_the_kernel(void **state)
{
    (void)state;
    struct mm_struct *m1 = mm_alloc(), *m2 = mm_alloc();
    unsigned long a1 = map_dev(m1, BUF_PAGES, MAP_SHARED, 0);
    unsigned long a2 = map_dev(m2, BUF_PAGES, MAP_SHARED, 0);
    for (unsigned long i = 0; i < BUF_PAGES; i++) {
        unsigned long o = i * PAGE_SIZE;
        *(volatile unsigned long *)(dev.buf + o) = 0x1000 + i;
        assert_int_equal(U64(m1, a1 + o), 0x1000 + i);
        assert_int_equal(U64(m2, a2 + o), 0x1000 + i);
        U64(m1, a1 + o + 8) = 0x2000 + i;
        assert_int_equal(*(volatile unsigned long *)(dev.buf + o + 8),
                         0x2000 + i);
        assert_int_equal(U64(m2, a2 + o + 8), 0x2000 + i);
        U64(m2, a2 + o + 16) = 0x3000 + i;
        assert_int_equal(U64(m1, a1 + o + 16), 0x3000 + i);
        assert_int_equal(*(volatile unsigned long *)(dev.buf + o + 16),
                         0x3000 + i);
        /* mapped at once by the method: no fault was needed */
        pte_t *pte = walk(m1, a1 + o);
        assert_non_null(pte);
        assert_true(pte_present(*pte));
    }
    assert_int_equal(stat_of(m1).min_flt, 0);
    vm_check_mm(m1);
    mmput(m1);
    mmput(m2);
    /* the buffer is still the kernel's, with what the mms wrote */
    assert_int_equal(*(volatile unsigned long *)(dev.buf + 8), 0x2000);
    assert_int_equal(kslab_verify(), 0);
}

static void test_remap_shared_with_fork_child(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long s = map_dev(mm, BUF_PAGES, MAP_SHARED, 0);
    unsigned long p = map_dev(mm, BUF_PAGES, MAP_PRIVATE, 0);
    U64(mm, s) = 7;
    struct mm_struct *child = mm_fork(mm);
    assert_non_null(child);
    assert_int_equal(U64(child, s), 7);
    U64(child, s) = 8;
    assert_int_equal(U64(mm, s), 8);
    assert_int_equal(*(volatile unsigned long *)dev.buf, 8);
    /* a driver's private mapping is not copy-on-write either */
    U64(child, p + 8) = 9;
    assert_int_equal(U64(mm, p + 8), 9);
    assert_int_equal(*(volatile unsigned long *)(dev.buf + 8), 9);
    assert_int_equal(stat_of(child).cow_flt, 0);
    assert_int_equal(stat_of(mm).cow_flt, 0);
    vm_check_mm(child);
    mmput(child);
    assert_int_equal(U64(mm, s), 8);
    mmput(mm);
}

static void test_remap_leaves_unreserved_frame_unmapped(void **state)
{
    (void)state;
    mem_map_unreserve(virt_to_page(dev.buf + PAGE_SIZE));
    assert_false(PageReserved(virt_to_page(dev.buf + PAGE_SIZE)));
    assert_true(PageReserved(virt_to_page(dev.buf)));
    memset(dev.buf + PAGE_SIZE, 0x5a, PAGE_SIZE);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_dev(mm, BUF_PAGES, MAP_SHARED, 0);
    pte_t *pte = walk(mm, a);
    assert_true(pte && pte_present(*pte));
    pte = walk(mm, a + PAGE_SIZE);
    assert_true(!pte || pte_none(*pte));
    mmput(mm);
    mem_map_reserve(virt_to_page(dev.buf + PAGE_SIZE));
}

static void test_unreserve_makes_the_page_private(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_dev(mm, BUF_PAGES, MAP_SHARED, 0);
    *(volatile unsigned long *)dev.buf = 11;
    assert_int_equal(U64(mm, a), 11);
    mem_map_unreserve(virt_to_page(dev.buf));
    /* the kernel page kept its contents and is its own again */
    assert_int_equal(*(volatile unsigned long *)dev.buf, 11);
    *(volatile unsigned long *)dev.buf = 12;
    assert_int_equal(U64(mm, a), 11);
    U64(mm, a) = 13;
    assert_int_equal(*(volatile unsigned long *)dev.buf, 12);
    mmput(mm);
    mem_map_reserve(virt_to_page(dev.buf));
    assert_int_equal(*(volatile unsigned long *)dev.buf, 12);
    assert_int_equal(kslab_verify(), 0);
}

/* A host fork(): the child's buffer is its own copy, still shared
 * between its kernel address and its mm. */
static void test_reserved_frame_across_host_fork(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_dev(mm, BUF_PAGES, MAP_SHARED, 0);
    *(volatile unsigned long *)dev.buf = 21;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_default_segv();
        int bad = U64(mm, a) != 21;
        *(volatile unsigned long *)dev.buf = 22;
        bad |= (U64(mm, a) != 22) << 1;
        U64(mm, a + 8) = 23;
        bad |= (*(volatile unsigned long *)(dev.buf + 8) != 23) << 2;
        _exit(bad);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(*(volatile unsigned long *)dev.buf, 21);
    assert_int_equal(U64(mm, a), 21);
    assert_int_not_equal(U64(mm, a + 8), 23);
    mmput(mm);
}

/* ---- open and close ---- */

static void test_open_close_balance(void **state)
{
    (void)state;
    dev.opens = dev.closes = dev.mmaps = 0;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_dev(mm, 8, MAP_SHARED, RING_PGOFF);
    assert_int_equal(dev.mmaps, 1);
    assert_int_equal(dev.opens, 0); /* the method counts the first */
    /* a hole in the middle: the tail is a new vma */
    assert_int_equal(do_munmap(mm, a + PAGE_SIZE, PAGE_SIZE), 0);
    assert_int_equal(dev.opens, 1);
    /* mprotect of a middle part: two more */
    assert_int_equal(
        sys_mprotect(mm, a + 3 * PAGE_SIZE, 2 * PAGE_SIZE, PROT_READ), 0);
    assert_int_equal(dev.opens, 3);
    assert_int_equal(dev.closes, 0);
    assert_int_equal(count_vmas(mm), 4);
    /* never merged back: the vmas stay the driver's */
    assert_int_equal(sys_mprotect(mm, a + 3 * PAGE_SIZE, 2 * PAGE_SIZE, RW), 0);
    assert_int_equal(count_vmas(mm), 4);
    struct mm_struct *child = mm_fork(mm);
    assert_non_null(child);
    assert_int_equal(dev.opens, 7);
    /* a whole vma goes: close */
    assert_int_equal(do_munmap(mm, a, PAGE_SIZE), 0);
    assert_int_equal(dev.closes, 1);
    mmput(child);
    assert_int_equal(dev.closes, 5);
    mmput(mm);
    assert_int_equal(dev.closes, dev.opens + dev.mmaps);
}

static void test_failed_mmap_maps_nothing(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    dev.fail_mmap = 1;
    unsigned long r = do_mmap_pgoff(mm, &dev_file, 0, BUF_PAGES * PAGE_SIZE, RW,
                                    MAP_SHARED, 0);
    dev.fail_mmap = 0;
    assert_int_equal((long)r, -EIO);
    assert_int_equal(count_vmas(mm), 0);
    assert_int_equal(stat_of(mm).rss, 0);
    /* too long for the buffer: the method's -EINVAL */
    r = do_mmap_pgoff(mm, &dev_file, 0, 4 * PAGE_SIZE, RW, MAP_SHARED, 0);
    assert_int_equal((long)r, -EINVAL);
    struct file nofile = {NULL, NULL};
    r = do_mmap_pgoff(mm, &nofile, 0, PAGE_SIZE, RW, MAP_SHARED, 0);
    assert_int_equal((long)r, -ENODEV);
    r = do_mmap_pgoff(mm, &dev_file, 0, PAGE_SIZE, RW,
                      MAP_SHARED | MAP_ANONYMOUS, 0);
    assert_int_equal((long)r, -EINVAL);
    assert_int_equal(count_vmas(mm), 0);
    vm_check_mm(mm);
    mmput(mm);
}

/* ---- vmalloc through nopage ---- */

static sigjmp_buf bus_jmp;
static volatile int bus_code;
static void *volatile bus_addr;

static void bus_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    bus_code = si->si_code;
    bus_addr = si->si_addr;
    siglongjmp(bus_jmp, 1);
}

static void test_vmalloc_ring_through_nopage(void **state)
{
    (void)state;
    struct mm_struct *m1 = mm_alloc(), *m2 = mm_alloc();
    unsigned long a1 = map_dev(m1, RING_PAGES + 2, MAP_SHARED, RING_PGOFF);
    unsigned long a2 = map_dev(m2, RING_PAGES, MAP_SHARED, RING_PGOFF);
    for (unsigned long i = 0; i < RING_PAGES; i++) {
        unsigned long o = i * PAGE_SIZE;
        *(volatile unsigned long *)(dev.ring + o) = 0x4000 + i;
        assert_int_equal(U64(m1, a1 + o), 0x4000 + i);
        U64(m2, a2 + o + 8) = 0x5000 + i;
        assert_int_equal(*(volatile unsigned long *)(dev.ring + o + 8),
                         0x5000 + i);
        assert_int_equal(U64(m1, a1 + o + 8), 0x5000 + i);
        /* the user pte maps the vmalloc frame itself */
        assert_ptr_equal(pte_page(*walk(m1, a1 + o)),
                         vmalloc_to_page(dev.ring + o));
    }
    /* past the ring: NOPAGE_SIGBUS */
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = bus_handler;
    sa.sa_flags = SA_SIGINFO;
    assert_int_equal(sigaction(SIGBUS, &sa, &old), 0);
    int got = 0;
    unsigned long past = a1 + RING_PAGES * PAGE_SIZE;
    if (sigsetjmp(bus_jmp, 1) == 0)
        (void)U64(m1, past);
    else
        got = 1;
    sigaction(SIGBUS, &old, NULL);
    assert_int_equal(got, 1);
    assert_int_equal(bus_code, BUS_ADRERR);
    assert_ptr_equal(bus_addr, mm_host(m1, past));
    /* the frames are the ring's: a fork child shares them too */
    struct mm_struct *child = mm_fork(m1);
    U64(child, a1) = 0x6000;
    assert_int_equal(*(volatile unsigned long *)dev.ring, 0x6000);
    mmput(child);
    vm_check_mm(m1);
    mmput(m1);
    mmput(m2);
    assert_int_equal(*(volatile unsigned long *)dev.ring, 0x6000);
}

/* ---- the kernel half of the pgd ---- */

static void test_kernel_pgd_half(void **state)
{
    (void)state;
    assert_int_equal(USER_PGD_PTRS + KERNEL_PGD_PTRS, PTRS_PER_PGD);
    assert_ptr_equal(pgd_offset_k(0), swapper_pg_dir);
    struct mm_struct *mm = mm_alloc();
    /* an area vmalloc'ed after the mm was made is in its pgd already */
    char *v = vmalloc(3 * PAGE_SIZE);
    assert_non_null(v);
    for (unsigned long i = 0; i < KERNEL_PGD_PTRS; i++)
        assert_ptr_equal(mm->pgd[USER_PGD_PTRS + i].pgd,
                         swapper_pg_dir[USER_PGD_PTRS + i].pgd);
    pgd_t *pgd = pgd_offset(mm, TASK_SIZE);
    assert_false(pgd_none(*pgd));
    assert_ptr_equal(pgd, pgd_offset(mm, 0) + USER_PGD_PTRS);
    unsigned long k = (unsigned long)(v + 2 * PAGE_SIZE);
    pte_t *pte = pte_offset(pmd_offset(pgd, k), k);
    assert_true(pte_present(*pte));
    assert_ptr_equal(pte_page(*pte), vmalloc_to_page(v + 2 * PAGE_SIZE));
    /* not a kernel address: the walk ends at once */
    assert_true(pgd_none(*pgd_offset_k((unsigned long)dev.buf)));
    vfree(v);
    assert_false(pte_present(*pte));
    mmput(mm);
    /* the kernel's tables outlive every mm */
    assert_false(pgd_none(swapper_pg_dir[USER_PGD_PTRS]));
}

/* ---- physical addresses ---- */

static void test_virt_to_phys(void **state)
{
    (void)state;
    char *k = kmalloc(100, GFP_KERNEL);
    assert_non_null(k);
    unsigned long phys = __pa(k + 5);
    assert_ptr_equal(__va(phys), k + 5);
    assert_ptr_equal(phys_to_virt(virt_to_phys(dev.buf)), dev.buf);
    assert_int_equal(virt_to_phys(dev.buf) & ~PAGE_MASK, 0);
    kfree(k);
}

/* ---- kiobufs ---- */

static void test_map_user_kiobuf(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = anon(mm, 0, 4 * PAGE_SIZE, RW, MAP_PRIVATE);
    struct kiobuf iobuf;
    assert_int_equal(map_user_kiobuf(0, &iobuf, mm, a + 100, 2 * PAGE_SIZE), 0);
    assert_int_equal(iobuf.nr_pages, 3);
    assert_int_equal(iobuf.offset, 100);
    assert_int_equal(iobuf.length, 2 * PAGE_SIZE);
    for (int i = 0; i < 3; i++) {
        pte_t *pte = walk(mm, a + (unsigned long)i * PAGE_SIZE);
        assert_true(pte && pte_present(*pte) && pte_write(*pte));
        assert_ptr_equal(iobuf.maplist[i], pte_page(*pte));
        assert_int_equal(page_pins(iobuf.maplist[i]), 1);
    }
    struct page *p0 = iobuf.maplist[0];
    unmap_kiobuf(&iobuf);
    assert_null(iobuf.maplist);
    assert_int_equal(page_pins(p0), 0);
    /* a hole: -EFAULT, nothing pinned */
    assert_int_equal(
        map_user_kiobuf(1, &iobuf, mm, a + 3 * PAGE_SIZE, 2 * PAGE_SIZE),
        -EFAULT);
    assert_null(iobuf.maplist);
    assert_int_equal(page_pins(pte_page(*walk(mm, a + 3 * PAGE_SIZE))), 0);
    mmput(mm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remap_shared_by_two_mms_and_the_kernel),
        cmocka_unit_test(test_remap_shared_with_fork_child),
        cmocka_unit_test(test_remap_leaves_unreserved_frame_unmapped),
        cmocka_unit_test(test_unreserve_makes_the_page_private),
        cmocka_unit_test(test_reserved_frame_across_host_fork),
        cmocka_unit_test(test_open_close_balance),
        cmocka_unit_test(test_failed_mmap_maps_nothing),
        cmocka_unit_test(test_vmalloc_ring_through_nopage),
        cmocka_unit_test(test_kernel_pgd_half),
        cmocka_unit_test(test_virt_to_phys),
        cmocka_unit_test(test_map_user_kiobuf),
    };
    return cmocka_run_group_tests(tests, dev_setup, dev_teardown);
}
