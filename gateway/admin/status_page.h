/*
 * The admin API's status page (GET /): gateway/admin/status_page.html,
 * turned into C at build time by gateway/admin/embed_page.py. One
 * self-contained HTML document (inline CSS and JS) that polls GET /status.
 * gw_status_page holds the page's bytes followed by a NUL that is not part
 * of the page; gw_status_page_len is the number of bytes to send.
 */
#ifndef GW_ADMIN_STATUS_PAGE_H
#define GW_ADMIN_STATUS_PAGE_H

extern const char gw_status_page[];
extern const unsigned long gw_status_page_len;

#endif
