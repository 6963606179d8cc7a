/* driver_mmap.c: a 2.4 driver's mmap — a kmalloc'ed buffer mapped at once
 * with remap_page_range, a vmalloc'ed one page by page through nopage. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include <kslab/slab.h>
#include <kslab/vm.h>

#define LEN (2 * PAGE_SIZE) /* each buffer; the vmalloc one at offset LEN */

static char *kmalloc_ptr, *kmalloc_area, *vmalloc_area;
static int opens, closes;

static void mmapdrv_open(struct vm_area_struct *vma)
{
    opens++;
    printf("  open  %08lx-%08lx\n", vma->vm_start, vma->vm_end);
}

static void mmapdrv_close(struct vm_area_struct *vma)
{
    closes++;
    printf("  close %08lx-%08lx\n", vma->vm_start, vma->vm_end);
}

/* vmalloc'ed memory: look the page up in the kernel's page tables */
static struct page *vmalloc_page(unsigned long address)
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

static struct page *mmapdrv_nopage(struct vm_area_struct *vma,
                                   unsigned long address, int write_access)
{
    unsigned long offset =
        address - vma->vm_start + (vma->vm_pgoff << PAGE_SHIFT) - LEN;
    struct page *page = NOPAGE_SIGBUS;
    (void)write_access;
    if (offset < LEN)
        page = vmalloc_page((unsigned long)vmalloc_area + offset);
    if (page != NOPAGE_SIGBUS)
        get_page(page); /* the reference the fault takes over */
    return page;
}

static struct vm_operations_struct mmapdrv_vm_ops = {
    .open = mmapdrv_open,
    .close = mmapdrv_close,
    .nopage = mmapdrv_nopage,
};

static int mmapdrv_mmap(struct file *file, struct vm_area_struct *vma)
{
    unsigned long offset = vma->vm_pgoff << PAGE_SHIFT;
    unsigned long size = vma->vm_end - vma->vm_start;
    (void)file;
    if (offset == 0 && size <= LEN) { /* the kmalloc area, mapped now */
        if (remap_page_range(vma, vma->vm_start, virt_to_phys(kmalloc_area),
                             size, vma->vm_page_prot))
            return -EAGAIN;
    } else if (offset != LEN || size > LEN) {
        return -ENXIO;
    }
    vma->vm_ops = &mmapdrv_vm_ops; /* the vmalloc area: faults, nopage */
    return 0;
}

static struct file_operations mmapdrv_fops = {.mmap = mmapdrv_mmap};

int main(int argc, char **argv)
{
    if (argc > 1) { /* every example answers --help */
        puts("usage: driver_mmap (no arguments)");
        return strcmp(argv[1], "--help") ? 2 : 0;
    }
    /* module init: page-aligned buffers, the kmalloc'ed one reserved */
    kmalloc_ptr = kmalloc(LEN + 2 * PAGE_SIZE, GFP_KERNEL);
    vmalloc_area = vmalloc(LEN);
    if (!kmalloc_ptr || !vmalloc_area)
        return 1;
    kmalloc_area =
        (char *)(((unsigned long)kmalloc_ptr + PAGE_SIZE - 1) & PAGE_MASK);
    for (unsigned long i = 0; i < LEN; i += PAGE_SIZE)
        mem_map_reserve(virt_to_page(kmalloc_area + i));
    strcpy(kmalloc_area, "kmalloc area");
    strcpy(vmalloc_area + PAGE_SIZE, "vmalloc area");

    /* two processes open the device and map both buffers */
    struct file dev = {.f_op = &mmapdrv_fops};
    struct mm_struct *mm[2] = {mm_alloc(), mm_alloc()};
    unsigned long k[2], v[2];
    for (int i = 0; i < 2; i++) {
        k[i] = do_mmap_pgoff(mm[i], &dev, 0, LEN, PROT_READ | PROT_WRITE,
                             MAP_SHARED, 0);
        v[i] = do_mmap_pgoff(mm[i], &dev, 0, LEN, PROT_READ | PROT_WRITE,
                             MAP_SHARED, LEN >> PAGE_SHIFT);
        if (IS_ERR_VALUE(k[i]) || IS_ERR_VALUE(v[i]))
            return 1;
    }
    printf("mm 0 reads \"%s\", \"%s\"\n", (char *)mm_host(mm[0], k[0]),
           (char *)mm_host(mm[0], v[0] + PAGE_SIZE));
    strcpy(mm_host(mm[1], k[1]), "written by mm 1");
    strcpy(mm_host(mm[1], v[1] + PAGE_SIZE), "also by mm 1");
    printf("the kernel reads \"%s\", \"%s\"\n", kmalloc_area,
           vmalloc_area + PAGE_SIZE);

    struct mm_struct *child = mm_fork(mm[0]); /* open for each vma */
    printf("mm 0 forked; child reads \"%s\"\n", (char *)mm_host(child, k[0]));
    do_munmap(mm[0], v[0], PAGE_SIZE); /* half of a vma: no call */
    mm_dump_maps(mm[0], stdout);
    mmput(child); /* close for each vma */
    mmput(mm[1]);
    mmput(mm[0]);
    printf("%d opens, %d closes, %d mmaps\n", opens, closes, 4);

    /* module exit */
    for (unsigned long i = 0; i < LEN; i += PAGE_SIZE)
        mem_map_unreserve(virt_to_page(kmalloc_area + i));
    kfree(kmalloc_ptr);
    vfree(vmalloc_area);
    return opens + 4 == closes ? 0 : 1;
}
