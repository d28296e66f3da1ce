/*
 * The "LwM2M" sidebar tab: the devices of each deployed lwm2m-server, their object trees named from
 * the object model, and Read / Write / Execute / Observe on any resource, with live values and a
 * small chart. Data comes from the runtime's /lwm2m/ admin routes (src/nodes/admin/routes.ts);
 * live updates through RED.comms (lwm2m/devices|events|notify/<server id>), already throttled
 * there. Loaded by lwm2m-server.html.
 */
/* global RED, $ */
(function () {
    'use strict';
    var NS = 'node-red-contrib-lwm2m-kit/lwm2m-server:lwm2m-server.browser.';
    var PAGE = 50;
    var CHART_POINTS = 60;
    function t(key, opts) { return RED._(NS + key, opts); }
    function api(method, url, body) {
        return $.ajax({ url: 'lwm2m/' + url, method: method, contentType: body ? 'application/json' : undefined, data: body ? JSON.stringify(body) : undefined, dataType: 'json' });
    }
    function failure(xhr) {
        var body = xhr && xhr.responseJSON;
        if (xhr && xhr.status === 401) return t('unauthorized');
        return (body && body.error) || (xhr && xhr.statusText) || 'error';
    }
    function text(v) {
        if (v === null || v === undefined) return '';
        if (typeof v === 'object' && v.hex !== undefined) return '0x' + v.hex;
        if (typeof v === 'object') return JSON.stringify(v);
        return String(v);
    }
    function ago(iso) {
        var s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
        if (s < 60) return s + ' s';
        if (s < 3600) return Math.round(s / 60) + ' min';
        return Math.round(s / 3600) + ' h';
    }

    var state = { server: null, filter: '', offset: 0, device: null, models: {}, watches: {}, subscribed: null };
    var content = $('<div class="lwm2m-browser">');
    var toolbar = $('<div class="lwm2m-browser-toolbar">').appendTo(content);
    var serverSelect = $('<select class="lwm2m-browser-server">').appendTo(toolbar);
    var refresh = $('<button class="red-ui-button red-ui-button-small"><i class="fa fa-refresh"></i></button>').appendTo(toolbar);
    var listView = $('<div class="lwm2m-browser-list">').appendTo(content);
    var filterInput = $('<input type="text" class="lwm2m-browser-filter">').appendTo(listView);
    var summary = $('<div class="lwm2m-browser-summary">').appendTo(listView);
    var table = $('<table class="lwm2m-browser-devices"><thead><tr></tr></thead><tbody></tbody></table>').appendTo(listView);
    var pager = $('<div class="lwm2m-browser-pager">').appendTo(listView);
    var prev = $('<button class="red-ui-button red-ui-button-small"><i class="fa fa-chevron-left"></i></button>').appendTo(pager);
    var pageLabel = $('<span>').appendTo(pager);
    var next = $('<button class="red-ui-button red-ui-button-small"><i class="fa fa-chevron-right"></i></button>').appendTo(pager);
    var eventsBox = $('<details class="lwm2m-browser-events"><summary></summary><ul></ul></details>').appendTo(listView);
    var deviceView = $('<div class="lwm2m-browser-device">').hide().appendTo(content);

    function labels() {
        filterInput.attr('placeholder', t('filter'));
        var head = table.find('thead tr').empty();
        ['endpoint', 'address', 'version', 'binding', 'lifetime', 'lastSeen', 'state'].forEach(function (k) { $('<th>').text(t('col.' + k)).appendTo(head); });
        eventsBox.find('summary').text(t('events'));
    }

    function loadServers() {
        return api('GET', 'servers').then(function (servers) {
            var current = serverSelect.val();
            serverSelect.empty();
            if (servers.length === 0) {
                $('<option value="">').text(t('noServer')).appendTo(serverSelect);
            }
            servers.forEach(function (s) {
                var label = (s.name || ('lwm2m-server :' + (s.port || s.securePort || ''))) + (s.running ? '' : ' (' + t('stopped') + ')');
                $('<option>').val(s.id).text(label).appendTo(serverSelect);
            });
            if (current && servers.some(function (s) { return s.id === current; })) serverSelect.val(current);
            selectServer(serverSelect.val() || null);
        }, function (xhr) { summary.text(failure(xhr)); });
    }

    function subscribe(id) {
        if (state.subscribed) {
            RED.comms.unsubscribe('lwm2m/devices/' + state.subscribed, onDevices);
            RED.comms.unsubscribe('lwm2m/events/' + state.subscribed, onEvents);
            RED.comms.unsubscribe('lwm2m/notify/' + state.subscribed, onNotify);
        }
        state.subscribed = id;
        if (!id) return;
        RED.comms.subscribe('lwm2m/devices/' + id, onDevices);
        RED.comms.subscribe('lwm2m/events/' + id, onEvents);
        RED.comms.subscribe('lwm2m/notify/' + id, onNotify);
    }

    function selectServer(id) {
        if (id !== state.server) {
            state.server = id;
            state.offset = 0;
            state.watches = {};
            showList();
            subscribe(id);
        }
        loadDevices();
        loadEvents();
    }

    function loadDevices() {
        var body = table.find('tbody').empty();
        if (!state.server) { summary.text(''); return; }
        api('GET', 'servers/' + encodeURIComponent(state.server) + '/devices?offset=' + state.offset + '&limit=' + PAGE + '&filter=' + encodeURIComponent(state.filter)).then(function (page) {
            summary.text(t('summary', { total: page.total, matched: page.matched }));
            page.devices.forEach(function (d) {
                var row = $('<tr class="lwm2m-browser-row">').attr('data-endpoint', d.endpoint).appendTo(body);
                $('<td>').append($('<a href="#">').text(d.endpoint)).appendTo(row);
                $('<td>').text(d.address + ':' + d.port + (d.secure ? ' 🔒' : '')).appendTo(row);
                $('<td>').text(d.lwm2mVersion).appendTo(row);
                $('<td>').text(d.binding + (d.queueMode ? 'Q' : '')).appendTo(row);
                $('<td>').text(d.lifetime + ' s').appendTo(row);
                $('<td>').text(ago(d.lastSeen)).attr('title', d.lastSeen).appendTo(row);
                $('<td>').text(d.queueMode ? (d.awake ? t('awake') : t('asleep')) + (d.queued ? ' · ' + t('queued', { n: d.queued }) : '') : t('online')).appendTo(row);
                row.on('click', function (e) { e.preventDefault(); openDevice(d.endpoint); });
            });
            var last = Math.min(page.matched, state.offset + page.devices.length);
            pageLabel.text(page.matched ? (state.offset + 1) + '–' + last + ' / ' + page.matched : '0');
            prev.prop('disabled', state.offset === 0);
            next.prop('disabled', last >= page.matched);
        }, function (xhr) { summary.text(failure(xhr)); });
    }

    function loadEvents() {
        var list = eventsBox.find('ul').empty();
        if (!state.server) return;
        api('GET', 'servers/' + encodeURIComponent(state.server) + '/events').then(function (events) {
            eventsBox.find('summary').text(t('events') + ' (' + events.length + ')');
            events.slice().reverse().forEach(function (e) {
                var what = e.kind === 'bootstrap' ? t('bootstrap') + ' ' + e.event + (e.step ? ' ' + e.step : '') : t('refused') + ' ' + e.operation;
                $('<li>').text(new Date(e.at).toLocaleTimeString() + ' ' + (e.endpoint || e.address + ':' + e.port) + ' — ' + what + (e.code ? ' ' + e.code : '') + (e.reason ? ': ' + e.reason : '')).appendTo(list);
            });
        });
    }

    function onDevices() { if (!state.device) loadDevices(); }
    function onEvents() { if (eventsBox.prop('open') || !state.device) loadEvents(); }

    function showList() {
        state.device = null;
        deviceView.hide().empty();
        listView.show();
    }

    function model(objectId) {
        if (state.models[objectId]) return $.Deferred().resolve(state.models[objectId]).promise();
        return api('GET', 'model/' + objectId + '?server=' + encodeURIComponent(state.server)).then(function (def) {
            state.models[objectId] = def;
            return def;
        }, function () { return $.Deferred().resolve(null).promise(); });
    }

    function openDevice(endpoint) {
        api('GET', 'servers/' + encodeURIComponent(state.server) + '/devices/' + encodeURIComponent(endpoint)).then(function (d) {
            state.device = endpoint;
            listView.hide();
            deviceView.empty().show();
            var head = $('<div class="lwm2m-browser-device-head">').appendTo(deviceView);
            $('<button class="red-ui-button red-ui-button-small"><i class="fa fa-arrow-left"></i></button>').on('click', function () { showList(); loadDevices(); }).appendTo(head);
            $('<b>').text(' ' + d.endpoint).appendTo(head);
            $('<div class="lwm2m-browser-device-info">').text(d.address + ':' + d.port + ' · LwM2M ' + d.lwm2mVersion + ' · ' + d.binding + (d.queueMode ? 'Q' : '') + ' · ' + t('col.lifetime') + ' ' + d.lifetime + ' s · ' + t('col.lastSeen') + ' ' + ago(d.lastSeen) + (d.instance ? ' · ' + t('instance', { name: d.instance }) : '')).appendTo(deviceView);
            var tree = $('<div class="lwm2m-browser-tree">').appendTo(deviceView);
            d.objects.forEach(function (o) {
                var box = $('<details class="lwm2m-browser-object">').attr('data-object', o.id).appendTo(tree);
                $('<summary>').text('/' + o.id + ' ' + (o.name || t('unknownObject'))).appendTo(box);
                box.one('toggle', function () {
                    model(o.id).then(function (def) { renderObject(box, o, def, d.observations); });
                });
            });
        }, function (xhr) { RED.notify(failure(xhr), 'error'); });
    }

    function renderObject(box, o, def, observed) {
        var instances = o.instances.length ? o.instances : [0];
        instances.forEach(function (i) {
            var inst = $('<div class="lwm2m-browser-instance">').appendTo(box);
            $('<div class="lwm2m-browser-instance-head">').text('/' + o.id + '/' + i).appendTo(inst);
            if (def) {
                def.resources.forEach(function (r) { renderResource(inst, '/' + o.id + '/' + i + '/' + r.id, r, observed); });
                return;
            }
            // not in the object model: the instance read shows which resources there are (read and observe them)
            var note = $('<div>').text(t('noModel') + ' ').appendTo(inst);
            $('<a href="#">').text(t('readInstance')).appendTo(note).on('click', function (e) {
                e.preventDefault();
                api('POST', 'servers/' + encodeURIComponent(state.server) + '/devices/' + encodeURIComponent(state.device) + '/read', { path: '/' + o.id + '/' + i }).then(function (res) {
                    note.remove();
                    Object.keys(res.value || {}).forEach(function (rid) {
                        var row = renderResource(inst, '/' + o.id + '/' + i + '/' + rid, { id: rid, name: '', operations: 'R' }, observed);
                        row.find('.lwm2m-browser-value').text(text(res.value[rid]));
                    });
                }, function (xhr) { note.text(failure(xhr)); });
            });
        });
    }

    /** One resource's row: its name from the model, its value, and what the model lets one do to it. */
    function renderResource(inst, path, r, observed) {
        var row = $('<div class="lwm2m-browser-resource">').attr('data-path', path).appendTo(inst);
        $('<span class="lwm2m-browser-rname">').text((r.id + ' ' + r.name).trim()).attr('title', (r.type || '') + (r.units ? ' · ' + r.units : '') + ' · ' + (r.operations || '-')).appendTo(row);
        var value = $('<span class="lwm2m-browser-value">').appendTo(row);
        var chart = $('<svg class="lwm2m-browser-chart" width="80" height="18"><polyline fill="none" stroke="currentColor" stroke-width="1"/></svg>').hide().appendTo(row);
        var ops = $('<span class="lwm2m-browser-buttons">').appendTo(row);
        // observed by a flow already: the browser joins that observation when asked
        if (observed && observed.indexOf(path) >= 0) $('<i class="fa fa-rss lwm2m-flow-observed">').attr('title', t('flowObserved')).prependTo(ops);
        var show = function (v, units) { value.text(text(v) + (units && v !== '' && v !== undefined ? ' ' + units : '')).removeClass('lwm2m-error'); };
        var error = function (xhr) { value.text(failure(xhr)).addClass('lwm2m-error'); };
        var ep = encodeURIComponent(state.device);
        var base = 'servers/' + encodeURIComponent(state.server) + '/devices/' + ep + '/';
        if ((r.operations || '').indexOf('R') >= 0) {
            button(ops, 'read', 'fa-download', function () {
                api('POST', base + 'read', { path: path }).then(function (res) { show(res.value, r.units); }, error);
            });
            var obs = button(ops, 'observe', 'fa-eye', function () {
                if (state.watches[path]) {
                    api('POST', base + 'cancel', { path: path }).then(function () { delete state.watches[path]; obs.removeClass('lwm2m-active').attr('title', t('op.observe')); row.removeClass('lwm2m-watched'); chart.hide(); }, error);
                } else {
                    api('POST', base + 'observe', { path: path }).then(function (res) {
                        state.watches[path] = { points: [], show: show, units: r.units, chart: chart };
                        obs.addClass('lwm2m-active').attr('title', t('op.cancel'));
                        row.addClass('lwm2m-watched');
                        show(res.value, r.units);
                        plot(path, res.value);
                    }, error);
                }
            });
        }
        if ((r.operations || '').indexOf('W') >= 0) {
            button(ops, 'write', 'fa-pencil', function () { writeDialog(path, r, function (v) {
                api('POST', base + 'write', { path: path, value: v }).then(function (res) { show(res.code + ' ✓'); }, error);
            }); });
        }
        if ((r.operations || '').indexOf('E') >= 0) {
            button(ops, 'execute', 'fa-play', function () {
                var args = window.prompt(t('executeArgs', { path: path }), '');
                if (args === null) return;
                api('POST', base + 'execute', { path: path, args: args }).then(function (res) { show(res.code + ' ✓'); }, error);
            });
        }
        return row;
    }

    function button(container, op, icon, click) {
        return $('<button class="red-ui-button red-ui-button-small">').addClass('lwm2m-op-' + op).attr('title', t('op.' + op)).append($('<i class="fa">').addClass(icon)).on('click', function (e) { e.preventDefault(); click(); }).appendTo(container);
    }

    /** A write typed by the model: a checkbox for booleans, a number field for numbers, text otherwise. */
    function writeDialog(path, r, done) {
        var input = r.type === 'boolean' ? $('<input type="checkbox">')
            : $('<input type="' + (/integer|unsigned|float/.test(r.type) ? 'number' : 'text') + '" style="width:100%">').attr('step', r.type === 'float' ? 'any' : '1');
        var box = $('<div class="lwm2m-browser-write">').append($('<div>').text(path + ' ' + r.name + ' (' + r.type + (r.units ? ', ' + r.units : '') + ')'), input);
        var dialog = $('<div>').append(box).appendTo(document.body).dialog({
            modal: true, title: t('op.write'), width: 360,
            close: function () { dialog.remove(); },
            buttons: [
                { text: RED._('common.label.cancel'), click: function () { dialog.dialog('close'); } },
                { text: t('op.write'), class: 'primary', click: function () {
                    var v = r.type === 'boolean' ? input.prop('checked') : /integer|unsigned|float/.test(r.type) ? Number(input.val()) : input.val();
                    if (typeof v === 'number' && !isFinite(v)) { input.addClass('input-error'); return; }
                    dialog.dialog('close');
                    done(v);
                } },
            ],
        });
    }

    function plot(path, value) {
        var w = state.watches[path];
        if (!w || typeof value !== 'number') return;
        w.points.push(value);
        if (w.points.length > CHART_POINTS) w.points.shift();
        if (w.points.length < 2) return;
        var min = Math.min.apply(null, w.points), max = Math.max.apply(null, w.points), span = max - min || 1;
        var pts = w.points.map(function (v, i) { return (i * 80 / (CHART_POINTS - 1)).toFixed(1) + ',' + (17 - (v - min) / span * 16).toFixed(1); }).join(' ');
        w.chart.show().find('polyline').attr('points', pts);
    }

    function onNotify(topic, n) {
        if (n.endpoint !== state.device) return;
        var w = state.watches[n.path];
        if (!w) return;
        w.show(n.value, w.units);
        plot(n.path, n.value);
    }

    serverSelect.on('change', function () { selectServer(serverSelect.val() || null); });
    refresh.on('click', function () { state.device ? openDevice(state.device) : loadServers(); });
    var filterTimer = null;
    filterInput.on('input', function () {
        clearTimeout(filterTimer);
        filterTimer = setTimeout(function () { state.filter = filterInput.val(); state.offset = 0; loadDevices(); }, 250);
    });
    prev.on('click', function () { state.offset = Math.max(0, state.offset - PAGE); loadDevices(); });
    next.on('click', function () { state.offset += PAGE; loadDevices(); });
    eventsBox.on('toggle', loadEvents);

    RED.events.on('runtime-state', function (e) { if (e && e.state === 'start') loadServers(); });
    RED.events.on('deploy', function () { setTimeout(loadServers, 500); });

    /** For dialogs: the registered endpoints of a server that match what was typed. */
    RED.lwm2m = RED.lwm2m || {};
    RED.lwm2m.endpoints = function (serverId, q) { return serverId && serverId !== '_ADD_' ? api('GET', 'servers/' + encodeURIComponent(serverId) + '/endpoints?q=' + encodeURIComponent(q || '')) : $.Deferred().resolve([]).promise(); };
    RED.lwm2m.objects = function (serverId) { return api('GET', 'model' + (serverId ? '?server=' + encodeURIComponent(serverId) : '')); };
    RED.lwm2m.object = function (serverId, id) { return api('GET', 'model/' + id + (serverId ? '?server=' + encodeURIComponent(serverId) : '')); };

    var added = false;
    function addTab() {
        if (added) return;
        added = true;
        labels();
        RED.sidebar.addTab({
            id: 'lwm2m', label: 'LwM2M', name: t('tab'), iconClass: 'fa fa-microchip', content: content, enableOnEdit: true,
            onchange: function () { loadServers(); },
        });
        loadServers();
    }
    // the catalogue is loaded with the node set: wait for it before the first labels
    if (RED.i18n && RED.i18n.loadNodeCatalog) RED.i18n.loadNodeCatalog('node-red-contrib-lwm2m-kit/lwm2m-server', addTab);
    else $(addTab);
    setTimeout(addTab, 2000);
})();
