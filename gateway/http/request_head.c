/* placeholder: replaced by the implementation */
typedef int gw_placeholder_request_head_t;
