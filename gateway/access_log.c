/* placeholder: replaced by the implementation */
typedef int gw_placeholder_access_log_t;
