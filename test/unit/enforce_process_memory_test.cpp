/*
 * Unit tests of the private-memory definition (core/enforce/process_memory.h) on real
 * /proc/<pid>/status texts of PostgreSQL 15 processes (Linux 6.18, shared_buffers = 1GB; a
 * second server with huge_pages = on), captured while:
 *   reader   had read a 182 MB table once into shared buffers, then sat idle.  Its smaps_rollup
 *            said Private_Clean + Private_Dirty = 90 MB (the buffers only it mapped: the old
 *            figure) and Anonymous = 3332 kB; ending such a backend frees about 1.3 MB
 *            (measured as the anonymous pages a cgroup of the server was charged, before and
 *            after ending 10 of them).
 *   holder   had filled a temporary table with temp_buffers = 64MB (ending it frees 23 MB).
 *   postmaster  the parent of both.
 */
#include "core/enforce/process_memory.h"

#include <gtest/gtest.h>

#include <string>

using namespace poolguard::core;

namespace
{

/*
 * The lines the five texts share: a status text is head + its own lines + tail.  The tail is the
 * reader's; after CoreDumping the others differed only in signal masks and queue, and context
 * switch counters, none of which is read.
 */
const std::string status_head = R"(Name:	postgres
Umask:	0077
State:	S (sleeping)
)";
const std::string status_tail = R"(CoreDumping:	0
THP_enabled:	1
untag_mask:	0xffffffffffffffff
Threads:	1
SigQ:	3/96367
SigPnd:	0000000000000000
ShdPnd:	0000000000000000
SigBlk:	0000000000400000
SigIgn:	0000000001701800
SigCgt:	0000000020006287
CapInh:	0000000000000000
CapPrm:	0000000000000000
CapEff:	0000000000000000
CapBnd:	000001fffeffffff
CapAmb:	0000000000000000
NoNewPrivs:	0
Seccomp:	0
Seccomp_filters:	0
Speculation_Store_Bypass:	vulnerable
SpeculationIndirectBranch:	always enabled
Cpus_allowed:	3
Cpus_allowed_list:	0-1
Mems_allowed:	00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000001
Mems_allowed_list:	0
voluntary_ctxt_switches:	6
nonvoluntary_ctxt_switches:	69
)";

std::string status(const char *own_lines)
{
    return status_head + own_lines + status_tail;
}

const std::string reader_4k = status(R"(Tgid:	27657
Ngid:	0
Pid:	27657
PPid:	15168
TracerPid:	0
Uid:	101	101	101	101
Gid:	104	104	104	104
FDSize:	256
Groups:	103 104 
NStgid:	27657
NSpid:	27657
NSpgid:	27657
NSsid:	27657
Kthread:	0
VmPeak:	 1194220 kB
VmSize:	 1194044 kB
VmLck:	       0 kB
VmPin:	       0 kB
VmHWM:	  105960 kB
VmRSS:	  105960 kB
RssAnon:	    3332 kB
RssFile:	    8828 kB
RssShmem:	   93800 kB
VmData:	    2960 kB
VmStk:	     132 kB
VmExe:	    5332 kB
VmLib:	   16324 kB
VmPTE:	     476 kB
VmSwap:	       0 kB
HugetlbPages:	       0 kB
)");

const std::string holder_4k = status(R"(Tgid:	27659
Ngid:	0
Pid:	27659
PPid:	15168
TracerPid:	0
Uid:	101	101	101	101
Gid:	104	104	104	104
FDSize:	256
Groups:	103 104 
NStgid:	27659
NSpid:	27659
NSpgid:	27659
NSsid:	27659
Kthread:	0
VmPeak:	 1229820 kB
VmSize:	 1227368 kB
VmLck:	       0 kB
VmPin:	       0 kB
VmHWM:	   45184 kB
VmRSS:	   43868 kB
RssAnon:	   25504 kB
RssFile:	    8748 kB
RssShmem:	    9616 kB
VmData:	   36480 kB
VmStk:	     132 kB
VmExe:	    5332 kB
VmLib:	   16324 kB
VmPTE:	     248 kB
VmSwap:	       0 kB
HugetlbPages:	       0 kB
)");

const std::string postmaster_4k = status(R"(Tgid:	15168
Ngid:	0
Pid:	15168
PPid:	1
TracerPid:	0
Uid:	101	101	101	101
Gid:	104	104	104	104
FDSize:	1024
Groups:	103 104 
NStgid:	15168
NSpid:	15168
NSpgid:	15168
NSsid:	15168
Kthread:	0
VmPeak:	 1191468 kB
VmSize:	 1191468 kB
VmLck:	       0 kB
VmPin:	       0 kB
VmHWM:	   75480 kB
VmRSS:	   75480 kB
RssAnon:	    2336 kB
RssFile:	   17136 kB
RssShmem:	   56008 kB
VmData:	    1604 kB
VmStk:	     132 kB
VmExe:	    5332 kB
VmLib:	   16324 kB
VmPTE:	     264 kB
VmSwap:	       0 kB
HugetlbPages:	       0 kB
)");

const std::string reader_hugetlb = status(R"(Tgid:	28241
Ngid:	0
Pid:	28241
PPid:	28139
TracerPid:	0
Uid:	101	101	101	101
Gid:	104	104	104	104
FDSize:	256
Groups:	103 104 
NStgid:	28241
NSpid:	28241
NSpgid:	28241
NSsid:	28241
Kthread:	0
VmPeak:	  381356 kB
VmSize:	  381180 kB
VmLck:	       0 kB
VmPin:	       0 kB
VmHWM:	   12272 kB
VmRSS:	   12272 kB
RssAnon:	    3336 kB
RssFile:	    8828 kB
RssShmem:	     108 kB
VmData:	    2952 kB
VmStk:	     132 kB
VmExe:	    5332 kB
VmLib:	   16324 kB
VmPTE:	     124 kB
VmSwap:	       0 kB
HugetlbPages:	   26624 kB
)");

const std::string holder_hugetlb = status(R"(Tgid:	28229
Ngid:	0
Pid:	28229
PPid:	28139
TracerPid:	0
Uid:	101	101	101	101
Gid:	104	104	104	104
FDSize:	256
Groups:	103 104 
NStgid:	28229
NSpid:	28229
NSpgid:	28229
NSsid:	28229
Kthread:	0
VmPeak:	  416956 kB
VmSize:	  414504 kB
VmLck:	       0 kB
VmPin:	       0 kB
VmHWM:	   36068 kB
VmRSS:	   34176 kB
RssAnon:	   25496 kB
RssFile:	    8596 kB
RssShmem:	      84 kB
VmData:	   36472 kB
VmStk:	     132 kB
VmExe:	    5332 kB
VmLib:	   16324 kB
VmPTE:	     172 kB
VmSwap:	       0 kB
HugetlbPages:	   28672 kB
)");

ProcessMemory parsed(const std::string &text)
{
    ProcessMemory m;
    EXPECT_TRUE(parse_process_status(text.c_str(), &m));
    return m;
}

} // namespace

TEST(ProcessMemory, ParsesRssAnonAndVmSwap)
{
    ProcessMemory reader = parsed(reader_4k);
    EXPECT_EQ(reader.anon_resident, 3332 * 1024LL);
    EXPECT_EQ(reader.anon_swapped, 0);
    EXPECT_EQ(parsed(holder_4k).anon_resident, 25504 * 1024LL);
    EXPECT_EQ(parsed(postmaster_4k).anon_resident, 2336 * 1024LL);
}

TEST(ProcessMemory, SharedBuffersNeverCount)
{
    /* The reader maps 93800 kB of the segment (RssShmem): none of it is private memory. */
    ProcessMemory pm = parsed(postmaster_4k);
    EXPECT_EQ(private_memory_bytes(parsed(reader_4k), &pm), (3332 - 2336) * 1024LL);
    EXPECT_EQ(private_memory_bytes(parsed(holder_4k), &pm), (25504 - 2336) * 1024LL);
}

TEST(ProcessMemory, HugePagesOnGivesTheSameFigures)
{
    ProcessMemory pm = parsed(postmaster_4k);
    /* HugetlbPages (the segment) is ignored; the anonymous figures match the 4 kB server's. */
    EXPECT_EQ(private_memory_bytes(parsed(reader_hugetlb), &pm), (3336 - 2336) * 1024LL);
    EXPECT_EQ(private_memory_bytes(parsed(holder_hugetlb), &pm), (25496 - 2336) * 1024LL);
}

TEST(ProcessMemory, SwappedOutPagesCount)
{
    ProcessMemory m;
    ASSERT_TRUE(parse_process_status("RssAnon:\t    1000 kB\nVmSwap:\t     500 kB\n", &m));
    ProcessMemory pm;
    ASSERT_TRUE(parse_process_status("RssAnon:\t 200 kB\nVmSwap:\t 100 kB\n", &pm));
    EXPECT_EQ(private_memory_bytes(m, nullptr), 1500 * 1024LL);
    EXPECT_EQ(private_memory_bytes(m, &pm), 1200 * 1024LL);
}

TEST(ProcessMemory, NeverNegativeUnknownStaysUnknown)
{
    ProcessMemory small, big, unknown;
    small.anon_resident = 100;
    big.anon_resident = 1000;
    EXPECT_EQ(private_memory_bytes(small, &big), 0);
    EXPECT_EQ(private_memory_bytes(unknown, &big), -1);
    EXPECT_EQ(private_memory_bytes(big, &unknown), 1000); /* postmaster unknown: nothing subtracted */
}

TEST(ProcessMemory, RejectsTextWithoutRssAnon)
{
    ProcessMemory m;
    EXPECT_FALSE(parse_process_status("", &m));
    EXPECT_FALSE(parse_process_status("VmSwap:\t 12 kB\n", &m));
    EXPECT_FALSE(parse_process_status("RssAnon:\t kB\n", &m));
    EXPECT_FALSE(parse_process_status("RssAnonX: 5 kB\nRssAnon:", &m));
    /* smaps_rollup is not status: its Anonymous line is not read as RssAnon. */
    EXPECT_FALSE(parse_process_status("Anonymous:          3336 kB\n", &m));
    /* absurd values are refused, not wrapped */
    EXPECT_FALSE(parse_process_status("RssAnon: 99999999999999999999 kB\n", &m));
    /* a last line without newline */
    EXPECT_TRUE(parse_process_status("Name: postgres\nRssAnon:\t 7 kB", &m));
    EXPECT_EQ(m.anon_resident, 7 * 1024);
}

TEST(ProcessMemory, FindsTheSharedSegmentsMapping)
{
    /* Real lines of a postmaster's /proc/<pid>/maps: 4 kB pages, then huge_pages = on. */
    const char *maps =
        "55765ea5e000-55765ea90000 rw-p 00000000 00:00 0 \n"
        "55769da0d000-55769dac6000 rw-p 00000000 00:00 0                          [heap]\n"
        "7fd7f1041000-7fd83560f000 rw-s 00000000 00:01 1277                       /dev/zero (deleted)\n"
        "7fd83560f000-7fd835618000 r--p 00000000 fe:00 5335470                    "
        "/usr/lib/postgresql/15/lib/pg_poolguard.so\n";
    Mapping m;
    ASSERT_TRUE(find_mapping(maps, 0x7fd7f1041000 + 4096 * 77, &m));
    EXPECT_EQ(m.start, 0x7fd7f1041000u);
    EXPECT_EQ(m.end, 0x7fd83560f000u);
    EXPECT_FALSE(m.hugetlb);
    EXPECT_FALSE(find_mapping(maps, 0x7fd83560f000 + 0x9000, &m));
    EXPECT_FALSE(find_mapping(maps, 0x1000, &m));
    EXPECT_FALSE(find_mapping("", 0x1000, &m));
    EXPECT_FALSE(find_mapping("garbage\n-\nzz-yy\n", 0x1000, &m));

    const char *huge = "7f4ed7600000-7f4eea200000 rw-s 00000000 00:11 146100                     "
                       "/anon_hugepage (deleted)\n";
    ASSERT_TRUE(find_mapping(huge, 0x7f4ed7600000, &m));
    EXPECT_TRUE(m.hugetlb);
    EXPECT_EQ(m.end - m.start, 0x12c00000u);
}
